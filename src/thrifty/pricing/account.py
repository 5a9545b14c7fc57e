"""Turns one answered call into ledger money: actual cost, baseline cost, savings by lever."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.pricing.catalog import Price
from thrifty.pricing.cost import call_cost, list_cost
from thrifty.types import Savings, Usage


@dataclass(slots=True)
class Bill:
    cost: float
    baseline: float
    savings: Savings


def bill(
    usage: Usage,
    served: Price | None,
    baseline: Price | None,
    *,
    original_input_tokens: int | None = None,
    batch: bool = False,
) -> Bill:
    """Price a final answer.

    baseline = the baseline model at list price for the original (uncompressed) input and this output.
    The difference to the actual cost is split: provider prompt caching (list − discounted price on the
    served model), routing (baseline model vs served model at list price, on the tokens sent). Other
    levers (cache, compression, cascade, batching) adjust these where they apply.
    """
    cost = call_cost(usage, served, batch=batch)
    original = usage.input_tokens if original_input_tokens is None else original_input_tokens
    base_price = baseline or served
    baseline_cost = list_cost(original, usage.output_tokens, base_price)
    served_list = list_cost(usage.input_tokens, usage.output_tokens, served)
    savings = Savings(
        prompt_cache=served_list * (served.batch if batch and served else 1.0) - cost if served else 0.0,
        routing=list_cost(usage.input_tokens, usage.output_tokens, base_price) - served_list,
        compression=list_cost(original, 0, base_price) - list_cost(usage.input_tokens, 0, base_price),
        batching=served_list - served_list * served.batch if batch and served else 0.0,
    )
    return Bill(cost=cost, baseline=baseline_cost, savings=savings)
