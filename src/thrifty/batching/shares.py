"""Splitting one batched call's usage into per-item shares that sum exactly to the whole."""

from __future__ import annotations

from thrifty.types import Usage


def apportion(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to `weights` summing to `total` (largest remainder)."""
    if not weights:
        return []
    mass = sum(weights)
    if mass <= 0:
        weights, mass = [1.0] * len(weights), float(len(weights))
    exact = [total * w / mass for w in weights]
    out = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - out[i], reverse=True)
    for i in by_remainder[: total - sum(out)]:
        out[i] += 1
    return out


def share_usage(usage: Usage, input_weights: list[float], output_weights: list[float]) -> list[Usage]:
    """Each item's share of `usage`: input-side counts by input weight, output by output weight."""
    inputs = apportion(usage.input_tokens, input_weights)
    cached = apportion(usage.cached_input_tokens, input_weights)
    writes = apportion(usage.cache_write_tokens, input_weights)
    long_writes = apportion(usage.cache_write_long_tokens, input_weights)
    outputs = apportion(usage.output_tokens, output_weights)
    reasoning = apportion(usage.reasoning_tokens, output_weights)
    return [
        Usage(
            input_tokens=inputs[i],
            cached_input_tokens=cached[i],
            cache_write_tokens=writes[i],
            cache_write_long_tokens=min(long_writes[i], writes[i]),
            output_tokens=outputs[i],
            reasoning_tokens=reasoning[i],
            estimated=usage.estimated,
        )
        for i in range(len(input_weights))
    ]
