"""Wires provider prompt caching into a Gateway from its `prompt_cache:` config.

Nothing here is a pipeline stage: prompt caching happens at the provider (Anthropic breakpoints are
added in the Anthropic translation) and in the pool (sticky deployment choice). The savings are
booked from the cached-token counts providers report (`thrifty.pricing.account.bill`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thrifty.promptcache.prefix import prefix_key
from thrifty.promptcache.settings import PromptCacheConfig

if TYPE_CHECKING:
    from thrifty.gateway import Gateway


def install(gateway: Gateway) -> None:
    """Turn on sticky routing and automatic breakpoints as configured."""
    config: PromptCacheConfig = gateway.config.prompt_cache
    gateway.pool.affinity = prefix_key if config.sticky else None
    breakpoints = None
    if config.auto_breakpoints:
        from thrifty.providers.anthropic_cache import Breakpoints

        breakpoints = Breakpoints(gateway.tokens, config.min_tokens).apply
    for provider in gateway.providers.values():
        use = getattr(provider, "use_prompt_cache", None)  # providers that need explicit breakpoints
        if use is not None:
            use(breakpoints)
