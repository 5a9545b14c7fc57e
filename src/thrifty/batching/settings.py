"""The `batching:` config section: live micro-batches and provider batch jobs.

```yaml
batching:
  live:                      # opt-in: coalesce concurrent small requests into one
    enabled: false
    models: [classify]       # requested model names (routes) to batch; empty = every model
    window_ms: 20            # the most a request waits for company
    max_items: 8
    max_item_tokens: 400     # only small requests are batched
    max_batch_tokens: 3000
  jobs:                      # /v1/files + /v1/batches
    store: null              # SQLite file; default `<ledger stem>-batches.db` next to the ledger
    poll_interval_s: 5
    forward: true            # use the provider's batch API when it has one
    concurrency: 8           # lines run at once when a job runs through the gateway itself
```
"""

from __future__ import annotations

from pydantic import Field

from thrifty.config import Section


class LiveBatching(Section):
    enabled: bool = False
    models: list[str] = Field(default_factory=list)
    """Requested model names (routes) whose requests may be batched; empty = all."""
    window_ms: float = Field(20.0, gt=0, le=5000)
    max_items: int = Field(8, ge=2, le=64)
    max_item_tokens: int = Field(400, ge=1)
    max_batch_tokens: int = Field(3000, ge=1)

    def applies_to(self, requested: str, model: str) -> bool:
        return self.enabled and (not self.models or requested in self.models or model in self.models)


class JobSettings(Section):
    store: str | None = None
    poll_interval_s: float = Field(5.0, gt=0)
    forward: bool = True
    concurrency: int = Field(8, ge=1, le=256)


class BatchingConfig(Section):
    live: LiveBatching = Field(default_factory=LiveBatching)
    jobs: JobSettings = Field(default_factory=JobSettings)
