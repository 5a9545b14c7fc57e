"""The price catalog: bundled model prices as data, overridable from config."""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens for one model."""

    model: str
    provider: str | None
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_long: float | None = None
    """Writes to a longer-lived cache (Anthropic's 1-hour TTL: 2× input); default: `cache_write`."""
    reasoning: float | None = None
    batch: float = 1.0
    kind: str = "chat"

    @property
    def cached_input_rate(self) -> float:
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cache_write_rate(self) -> float:
        return self.input if self.cache_write is None else self.cache_write

    @property
    def cache_write_long_rate(self) -> float:
        return self.cache_write_rate if self.cache_write_long is None else self.cache_write_long

    @property
    def reasoning_rate(self) -> float:
        return self.output if self.reasoning is None else self.reasoning


_PRICE_FIELDS = (
    "input", "output", "cached_input", "cache_write", "cache_write_long", "reasoning", "batch", "kind",
    "provider",
)  # fmt: skip


def _price_from(model: str, data: dict[str, Any]) -> Price:
    fields = {"provider": None, **{k: data[k] for k in _PRICE_FIELDS if k in data}}
    return Price(model=model, **fields)


class Catalog:
    """Model name → Price. Lookups fall back from `provider/model` to `model`."""

    def __init__(self, prices: dict[str, Price], as_of: str | None = None) -> None:
        self._prices = dict(prices)
        self.as_of = as_of

    @classmethod
    def bundled(cls) -> Catalog:
        text = resources.files("thrifty.pricing").joinpath("models.yaml").read_text()
        data = yaml.safe_load(text)
        prices = {name: _price_from(name, entry) for name, entry in data["models"].items()}
        return cls(prices, as_of=str(data.get("as_of")))

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> Catalog:
        """Overrides change given fields of known models and add new models."""
        prices = dict(self._prices)
        for name, fields in overrides.items():
            given = {k: v for k, v in fields.items() if v is not None}
            if name in prices:
                prices[name] = replace(prices[name], **given)
            else:
                prices[name] = _price_from(name, {"input": 0.0, "output": 0.0, **given})
        return Catalog(prices, self.as_of)

    def get(self, model: str) -> Price | None:
        price = self._prices.get(model)
        if price is None and "/" in model:
            price = self._prices.get(model.split("/", 1)[1])
        return price

    def __contains__(self, model: str) -> bool:
        return self.get(model) is not None

    def __iter__(self):
        return iter(self._prices.values())

    def names(self) -> list[str]:
        return list(self._prices)

    def by_provider(self, provider: str) -> list[Price]:
        return [p for p in self._prices.values() if p.provider == provider]
