"""The `prompt_cache:` config section.

```yaml
prompt_cache:
  auto_breakpoints: true   # add Anthropic cache_control breakpoints where the stable prefix is long enough
  min_tokens: null         # override the per-model minimum (1024 Sonnet/Opus, 2048 Haiku)
  sticky: true             # requests sharing a prefix go to the same deployment (rendezvous hashing)
```
"""

from __future__ import annotations

from pydantic import Field

from thrifty.config import Section


class PromptCacheConfig(Section):
    auto_breakpoints: bool = True
    """Add `cache_control` breakpoints to Anthropic requests whose caller placed none."""
    min_tokens: int | None = Field(None, ge=1)
    """Shortest prefix worth a breakpoint; default: the provider's minimum for the model."""
    sticky: bool = True
    """Pick among equal-priority deployments by a hash of the stable prefix instead of at random."""
