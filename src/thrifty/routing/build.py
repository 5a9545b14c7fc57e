"""Builds the plan stage from the `routing:` config. It is built even with no virtual model: it also
strips thrifty-only fields (`thrifty`, `metadata.thrifty_*`) from every request before it goes
upstream."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.errors import ConfigError
from thrifty.routing.config import GateConfig, LearnedRouterConfig, RoutingConfig, VirtualModel
from thrifty.routing.gates import AllGates, AnyGate, FormatGate, HeuristicGate, LogprobGate, QualityGate

if TYPE_CHECKING:
    from thrifty.gateway import Gateway
    from thrifty.routing.stage import LearnedPlan, PlanStage, VirtualPlan


def build_gate(spec: GateConfig) -> QualityGate:
    if spec.type == "heuristic":
        return HeuristicGate(min_chars=spec.min_chars)
    if spec.type == "format":
        return FormatGate()
    if spec.type == "logprob":
        return LogprobGate(spec.min_confidence)
    if spec.type == "judge":
        from thrifty.routing.judge import JudgeGate

        return JudgeGate(str(spec.model), spec.min_score)
    from thrifty.routing.learned_gate import LearnedGate

    return LearnedGate.load(str(spec.path), spec.threshold, spec.models)


def _learned(name: str, spec: LearnedRouterConfig, known: set[str]) -> LearnedPlan:
    from thrifty.routing.learned import LearnedRouter, RouterFileError
    from thrifty.routing.stage import LearnedPlan

    try:
        router = LearnedRouter.load(Path(spec.path))
    except RouterFileError as exc:
        raise ConfigError([(f"routing.virtual_models.{name}.learned.path", str(exc))]) from None
    names = [spec.models.get(m, m) for m in router.models]
    return LearnedPlan(router, names, spec.policy, spec.lam, spec.quality_target, spec.cost_cap_usd)


def _candidates(vm: VirtualModel, plan_names: list[str]) -> list[str]:
    if vm.rules is not None:
        return sorted(set(vm.rules.table.values()))
    if vm.cascade is not None:
        return list(vm.cascade.tiers)
    return plan_names


def _plan(gateway: Gateway, name: str, vm: VirtualModel, known: set[str]) -> VirtualPlan:
    from thrifty.routing.cascade import Cascade
    from thrifty.routing.rules import RulesRouter
    from thrifty.routing.stage import VirtualPlan

    learned = _learned(name, vm.learned, known) if vm.learned is not None else None
    candidates = _candidates(vm, learned.names if learned else [])
    where = f"routing.virtual_models.{name}"
    unknown = [m for m in candidates if m not in known]
    if unknown:
        raise ConfigError([(where, f"unknown model(s) {unknown}")])
    baseline = vm.baseline or max(candidates, key=lambda m: _price_per_token(gateway, m))
    if gateway.table.price(baseline) is None:
        raise ConfigError([(f"{where}.baseline", f"no price for model {baseline!r}")])
    plan = VirtualPlan(baseline=baseline)
    if vm.rules is not None:
        plan.rules = RulesRouter(vm.rules.table)
    elif learned is not None:
        plan.learned = learned
    elif vm.cascade is not None:
        gates = [build_gate(g) for g in vm.cascade.gates]
        gate = AllGates(gates) if vm.cascade.combine == "all" else AnyGate(gates)
        plan.cascade = Cascade(vm.cascade.tiers, gate, gateway.books, gateway.pool)
    return plan


def _price_per_token(gateway: Gateway, model: str) -> float:
    price = gateway.table.price(model)
    return 0.0 if price is None else price.input + price.output


def build_stage(gateway: Gateway) -> PlanStage:
    from thrifty.routing.stage import PlanStage

    config: RoutingConfig = gateway.config.routing
    if not config.virtual_models:
        return PlanStage({}, config.hints)  # routes nothing; strips thrifty-only fields
    known = set(gateway.config.model_names()) | set(gateway.table.names())
    plans = {name: _plan(gateway, name, vm, known) for name, vm in config.virtual_models.items()}
    return PlanStage(plans, config.hints)
