"""What the `routing:` section names must exist: checked when the config is loaded, not on a request.

`reference_errors` (every config load, names only): every model a virtual model can send a request to
(a rules table's targets, a cascade's tiers, a judge, a learned router's mapped names) must be one the
gateway serves; a baseline must have a price; a rules table's keys must be tasks the classifier
gives. `file_errors` (`config check` and `serve`, which read the files): router and gate files must
load, and a learned gate must know, for every tier it checks, which model it learned from it is.
Errors name the key (`routing.virtual_models.<name>.cascade.tiers.1`), as every config error does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from thrifty.routing.classifier import TASKS

if TYPE_CHECKING:
    from thrifty.routing.config import GateConfig, LearnedRouterConfig, VirtualModel

Error = tuple[str, str]


def reference_errors(
    virtual_models: dict[str, VirtualModel], served: set[str], priced: Callable[[str], bool]
) -> list[Error]:
    """Every dangling reference of the virtual models, as (key path, message)."""
    errors: list[Error] = []
    for name, vm in virtual_models.items():
        where = f"routing.virtual_models.{name}"
        errors += _unknown(_targets(vm, where), served)
        if vm.baseline is not None and not priced(vm.baseline):
            errors.append((f"{where}.baseline", f"no price for model {vm.baseline!r}"))
        if vm.rules is not None:
            allowed = {*TASKS, "default"}
            errors += [
                (f"{where}.rules.table.{task}", f"unknown task {task!r}; tasks: {', '.join(TASKS)}, default")
                for task in vm.rules.table
                if task not in allowed
            ]
        if vm.cascade is not None:
            errors += _duplicate_tiers(vm.cascade.tiers, f"{where}.cascade.tiers")
    return errors


def file_errors(virtual_models: dict[str, VirtualModel], served: set[str]) -> list[Error]:
    """What only the router and gate files can tell: they load, and they fit the config."""
    errors: list[Error] = []
    for name, vm in virtual_models.items():
        where = f"routing.virtual_models.{name}"
        if vm.learned is not None:
            errors += _router_file(vm.learned, f"{where}.learned", served)
        for j, gate in enumerate(vm.cascade.gates if vm.cascade is not None else ()):
            if gate.type == "learned":
                assert vm.cascade is not None
                errors += _gate_file(gate, vm.cascade.tiers[:-1], f"{where}.cascade.gates.{j}")
    return errors


def _targets(vm: VirtualModel, where: str) -> Iterator[tuple[str, str]]:
    """(key path, model name) of every model the virtual model may call."""
    if vm.rules is not None:
        yield from ((f"{where}.rules.table.{task}", model) for task, model in vm.rules.table.items())
    if vm.learned is not None:
        yield from ((f"{where}.learned.models.{k}", model) for k, model in vm.learned.models.items())
    if vm.cascade is not None:
        yield from ((f"{where}.cascade.tiers.{i}", model) for i, model in enumerate(vm.cascade.tiers))
        for j, gate in enumerate(vm.cascade.gates):
            if gate.type == "judge" and gate.model is not None:
                yield f"{where}.cascade.gates.{j}.model", gate.model


def _unknown(targets: Iterator[tuple[str, str]], served: set[str]) -> list[Error]:
    return [
        (path, f"unknown model {model!r}: no provider serves it")
        for path, model in targets
        if model not in served
    ]


def _router_file(spec: LearnedRouterConfig, where: str, served: set[str]) -> list[Error]:
    """The file loads; `models:` names only models it has; each model it has that `models:` does not
    map keeps its own name, which must then be served."""
    from thrifty.routing.learned import LearnedRouter, RouterFileError

    try:
        router = LearnedRouter.load(spec.path)
    except RouterFileError as exc:
        return [(f"{where}.path", str(exc))]
    stray = sorted(set(spec.models) - set(router.models))
    errors = [(f"{where}.models.{m}", f"the router file has no model {m!r}") for m in stray]
    errors += [
        (
            f"{where}.models",
            f"the router chooses among {router.models}; {m!r} is not mapped to a model the gateway "
            f"serves (add models: {{{m}: <served model>}})",
        )
        for m in router.models
        if m not in spec.models and m not in served
    ]
    return errors


def _duplicate_tiers(tiers: list[str], where: str) -> list[Error]:
    seen: set[str] = set()
    errors: list[Error] = []
    for i, tier in enumerate(tiers):
        if tier in seen:
            errors.append((f"{where}.{i}", f"{tier!r} is already an earlier tier"))
        seen.add(tier)
    return errors


def _gate_file(spec: GateConfig, gated: list[str], where: str) -> list[Error]:
    from thrifty.routing.learned import RouterFileError
    from thrifty.routing.learned_gate import GateModel

    try:
        model = GateModel.load(str(spec.path))
    except RouterFileError as exc:
        return [(f"{where}.path", str(exc))]
    stray = sorted(set(spec.models) - set(model.models))
    errors = [(f"{where}.models.{m}", f"the gate file has no model {m!r}") for m in stray]
    if not model.models:
        return errors  # trained without the answering model as an input: any tier will do
    known = {spec.models.get(m, m) for m in model.models}
    errors += [
        (
            f"{where}.models",
            f"the gate learned from answers of {model.models}; tier {tier!r} is none of them: map the "
            f"one it stands for to it (models: {{<one of them>: {tier}}})",
        )
        for tier in gated
        if tier not in known
    ]
    return errors
