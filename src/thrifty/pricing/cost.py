"""Cost of a call from usage and prices."""

from __future__ import annotations

from thrifty.pricing.catalog import Price
from thrifty.types import Usage

_PER = 1_000_000


def call_cost(usage: Usage, price: Price | None, *, batch: bool = False) -> float:
    """USD for one call. Cached input is billed at the cached rate, cache writes at the write rate
    (long-lived ones at theirs); reasoning tokens are part of output unless the model prices them apart."""
    if price is None:
        return 0.0
    uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    long_writes = min(usage.cache_write_long_tokens, usage.cache_write_tokens)
    cost = (
        uncached * price.input
        + usage.cached_input_tokens * price.cached_input_rate
        + (usage.cache_write_tokens - long_writes) * price.cache_write_rate
        + long_writes * price.cache_write_long_rate
    )
    if price.reasoning is not None:
        cost += usage.reasoning_tokens * price.reasoning
        cost += max(usage.output_tokens - usage.reasoning_tokens, 0) * price.output
    else:
        cost += usage.output_tokens * price.output
    cost /= _PER
    return cost * price.batch if batch else cost


def list_cost(input_tokens: int, output_tokens: int, price: Price | None) -> float:
    """USD at list prices with no discounts: what the tokens cost with no lever applied."""
    if price is None:
        return 0.0
    return (input_tokens * price.input + output_tokens * price.output) / _PER
