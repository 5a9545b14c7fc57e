"""The plan stage: a virtual model becomes a real one (routers) or a sequence of tiers (cascade).

Real model names pass through unchanged (only thrifty-only body fields are stripped). A routed call
gets `call.route` (`auto:<task>` for rules, `learned:<p>` for learned routers), `call.lever =
"routing"` and its baseline model in `call.meta["baseline_model"]`, so the Bookkeeper books the
saving under routing against the virtual model's baseline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from thrifty.pipeline import Call, Handler
from thrifty.routing import select
from thrifty.routing.cascade import Cascade
from thrifty.routing.hints import Hints, read_hints, strip
from thrifty.routing.learned import LearnedRouter
from thrifty.routing.rules import RulesRouter
from thrifty.routing.signals import Signals
from thrifty.types import ChatResult


@dataclass
class LearnedPlan:
    router: LearnedRouter
    names: list[str]
    """Gateway model name per router model (same order as router.models)."""
    policy: str
    lam: float
    quality_target: float
    cost_cap_usd: float | None

    def choose(self, signals: Signals, hints: Hints) -> tuple[int, float]:
        quality = self.router.quality(signals)
        cost = [float(c) for c in self.router.model.est_cost]
        if hints.quality_target is not None:  # a client's target, within the operator's cap if any
            cap = self.cost_cap_usd if self.policy == "cost_cap" else None
            i = select.cheapest_meeting(quality, cost, hints.quality_target, cap)
        elif self.policy == "quality":
            i = select.cheapest_meeting(quality, cost, self.quality_target)
        elif self.policy == "cost_cap" and self.cost_cap_usd is not None:
            i = select.best_under_cap(quality, cost, self.cost_cap_usd)
        else:
            i = select.tradeoff(quality, cost, self.lam)
        return i, quality[i]


@dataclass
class VirtualPlan:
    baseline: str
    rules: RulesRouter | None = None
    learned: LearnedPlan | None = None
    cascade: Cascade | None = None


class PlanStage:
    """Stage: resolve virtual models (route or cascade); strip thrifty-only fields for every call."""

    def __init__(self, plans: dict[str, VirtualPlan], honour_hints: bool = True) -> None:
        self.plans = plans
        self.honour_hints = honour_hints

    def names(self) -> Sequence[str]:
        return list(self.plans)

    async def handle(self, call: Call, next: Handler) -> ChatResult:
        hints = read_hints(call.body) if self.honour_hints else Hints()
        call.body = strip(call.body)
        plan = self.plans.get(call.model)
        if plan is None:
            return await next(call)
        call.meta["baseline_model"] = plan.baseline
        if plan.cascade is not None:
            return await plan.cascade.run(call, next)
        signals = Signals.of_body(call.body)
        if plan.rules is not None:
            task, model = plan.rules.choose(signals, hints.task)
            call.route = f"auto:{task}"
        else:
            assert plan.learned is not None
            # the embedding takes milliseconds of CPU: keep it off the event loop
            i, quality = await asyncio.to_thread(plan.learned.choose, signals, hints)
            model = plan.learned.names[i]
            call.route = f"learned:{quality:.2f}"
        call.lever = "routing"
        call.with_model(model)
        result = await next(call)
        result.headers["x-thrifty-route"] = call.route
        return result
