"""The `routing:` config section: virtual model names → a router or a cascade.

```yaml
routing:
  virtual_models:
    thrifty/auto:                # rules: task classifier → routing table
      rules: {table: {code: gpt-4o, reasoning: gpt-4o, default: gpt-4o-mini}}
      baseline: gpt-4o
    thrifty/learned:             # learned router file (thrifty route train)
      learned:
        path: routers/mmlu.npz
        models: {mixtral-8x7b-instruct-v0.1: gpt-4o-mini, gpt-4-1106-preview: gpt-4o}
        policy: tradeoff         # tradeoff (lambda) | quality (quality_target) | cost_cap (cost_cap_usd)
        lam: 200.0
    thrifty/cascade:             # tiers cheap → expensive, gates on each non-final tier
      cascade:
        tiers: [gpt-4o-mini, gpt-4o]
        gates: [{type: format}, {type: heuristic}]
        combine: all
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thrifty.config import Section


class RulesRouterConfig(Section):
    table: dict[str, str]
    """Task → model. `default` is used for tasks not in the table (required)."""

    @model_validator(mode="after")
    def _has_default(self) -> RulesRouterConfig:
        if "default" not in self.table:
            raise ValueError("rules.table needs a `default` model")
        return self


class LearnedRouterConfig(Section):
    path: str
    """Router file written by `thrifty route train` (relative paths: to the working directory)."""
    models: dict[str, str] = Field(default_factory=dict)
    """Router model name → gateway model name (when they differ)."""
    policy: Literal["tradeoff", "quality", "cost_cap"] = "tradeoff"
    lam: float = Field(0.0, ge=0)
    """tradeoff: pick argmax P(good) − lam × est. cost (USD); 0 = best predicted quality."""
    quality_target: float = Field(0.7, ge=0, le=1)
    """quality: the cheapest model whose P(good) ≥ this."""
    cost_cap_usd: float | None = Field(None, gt=0)
    """cost_cap: the best P(good) among models whose est. cost per call ≤ this."""

    @model_validator(mode="after")
    def _cap_given(self) -> LearnedRouterConfig:
        if self.policy == "cost_cap" and self.cost_cap_usd is None:
            raise ValueError("policy cost_cap needs `cost_cap_usd`")
        return self


class GateConfig(Section):
    type: Literal["heuristic", "format", "logprob", "judge", "learned"]
    min_chars: int = Field(1, ge=0)
    min_confidence: float = Field(0.8, ge=0, le=1)
    """logprob: mean token probability needed."""
    model: str | None = None
    """judge: the model that grades the answer."""
    min_score: float = Field(7.0, ge=0, le=10)
    """judge: grade (0–10) needed."""
    path: str | None = None
    """learned: gate file written by `thrifty route train-gate`."""
    threshold: float | None = Field(None, ge=0, le=1)
    """learned: P(good) needed (default: the file's calibrated threshold)."""
    models: dict[str, str] = Field(default_factory=dict)
    """learned: model name in the gate's training data → the gateway model (tier) it stands for."""

    @model_validator(mode="after")
    def _needs(self) -> GateConfig:
        if self.type == "judge" and not self.model:
            raise ValueError("a judge gate needs `model`")
        if self.type == "learned" and not self.path:
            raise ValueError("a learned gate needs `path`")
        return self


class CascadeConfig(Section):
    tiers: list[str] = Field(min_length=2)
    gates: list[GateConfig] = Field(default_factory=lambda: [GateConfig(type="format")], min_length=1)
    combine: Literal["all", "any"] = "all"


class VirtualModel(Section):
    rules: RulesRouterConfig | None = None
    learned: LearnedRouterConfig | None = None
    cascade: CascadeConfig | None = None
    baseline: str | None = None
    """Model the baseline is priced at (default: the most expensive candidate)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> VirtualModel:
        given = [k for k in ("rules", "learned", "cascade") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a virtual model needs exactly one of `rules`, `learned`, `cascade`")
        return self


class RoutingConfig(Section):
    virtual_models: dict[str, VirtualModel] = Field(default_factory=dict)
    hints: bool = True
    """Honour `x-thrifty-route-task` / `x-thrifty-quality-target` headers and body hints."""
