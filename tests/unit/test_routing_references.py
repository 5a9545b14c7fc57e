"""What the routing section names is checked when the config loads, with the bad key named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from thrifty.config import Config, check_files, parse
from thrifty.errors import ConfigError
from thrifty.routing.answer_features import ANSWER_NAMES
from thrifty.routing.features import LEXICAL_NAMES
from thrifty.routing.gates import Answer
from thrifty.routing.learned_gate import GateModel, LearnedGate

W = "routing.virtual_models.v"


def config(virtual: dict[str, Any]) -> dict[str, Any]:
    return {
        "providers": {"p": {"type": "openai", "base_url": "http://127.0.0.1:9", "api_key": "k"}},
        "models": {m: {"deployments": [{"provider": "p"}]} for m in ("gpt-4o", "gpt-4o-mini")},
        "routing": {"virtual_models": {"v": virtual}},
    }


def checked(virtual: dict[str, Any]) -> Config:
    """What `thrifty config check` and `serve` do: load, then read the files the config names."""
    loaded = parse(config(virtual), {})
    check_files(loaded)
    return loaded


def errors_of(virtual: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        checked(virtual)
    return dict(exc.value.errors)


def cascade(**spec: Any) -> dict[str, Any]:
    return {"cascade": {"tiers": ["gpt-4o-mini", "gpt-4o"], **spec}}


def gate_file(tmp_path: Path, models: list[str], boost: str | None = None) -> Path:
    """A learned gate whose only signal is which model answered (a large weight on `boost`)."""
    weights = np.zeros(len(ANSWER_NAMES) + len(LEXICAL_NAMES) + len(models) + 1)
    if boost is not None:
        weights[len(ANSWER_NAMES) + len(LEXICAL_NAMES) + models.index(boost)] = 6.0
    return GateModel(weights, use_embedding=False, threshold=0.9, models=models).save(tmp_path / "gate.npz")


def test_a_good_routing_config_loads():
    assert parse(
        config(cascade(gates=[{"type": "judge", "model": "gpt-4o-mini"}])), {}
    ).routing.virtual_models


@pytest.mark.parametrize(
    ("virtual", "path", "fragment"),
    [
        ({"cascade": {"tiers": ["gpt-4o-mini", "nope-model"]}}, f"{W}.cascade.tiers.1", "unknown model"),
        ({"cascade": {"tiers": ["gpt-4o", "gpt-4o"]}}, f"{W}.cascade.tiers.1", "already an earlier tier"),
        (cascade(gates=[{"type": "judge", "model": "nope"}]), f"{W}.cascade.gates.0.model", "nope"),
        ({"rules": {"table": {"coding": "gpt-4o", "default": "gpt-4o"}}}, f"{W}.rules.table.coding", "task"),
        ({"rules": {"table": {"default": "gpt-5-typo"}}}, f"{W}.rules.table.default", "unknown model"),
        ({**cascade(), "baseline": "no-such-model"}, f"{W}.baseline", "no price"),
        (cascade(gates=[{"type": "learned", "path": "/no/gate.npz"}]), f"{W}.cascade.gates.0.path", "cannot"),
        ({"learned": {"path": "/nonexistent/router.npz"}}, f"{W}.learned.path", "nonexistent"),
    ],
)  # fmt: skip
def test_dangling_references_name_their_key(virtual, path, fragment):
    errors = errors_of(virtual)
    assert path in errors, errors
    assert fragment in errors[path]


@pytest.mark.parametrize(
    ("virtual", "path"),
    [
        (cascade(gates=[]), f"{W}.cascade.gates"),  # no gate would accept every first answer
        ({"learned": {"path": "r.npz", "policy": "cost_cap"}}, f"{W}.learned"),
    ],
)
def test_incomplete_specs_are_config_errors(virtual, path):
    assert path in errors_of(virtual)


def test_a_learned_gate_must_know_which_trained_model_each_tier_is(tmp_path):
    path = str(gate_file(tmp_path, ["mixtral", "gpt-4"]))
    errors = errors_of(cascade(gates=[{"type": "learned", "path": path}]))
    assert "gpt-4o-mini" in errors[f"{W}.cascade.gates.0.models"]
    mapped = cascade(gates=[{"type": "learned", "path": path, "models": {"mixtral": "gpt-4o-mini"}}])
    assert checked(mapped).routing.virtual_models["v"].cascade is not None
    typo = cascade(gates=[{"type": "learned", "path": path, "models": {"mixtrl": "gpt-4o-mini"}}])
    assert "no model 'mixtrl'" in errors_of(typo)[f"{W}.cascade.gates.0.models.mixtrl"]


async def test_a_learned_gate_scores_a_tier_as_the_model_it_was_mapped_from(tmp_path):
    path = gate_file(tmp_path, ["mixtral", "gpt-4"], boost="mixtral")
    answer = Answer({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "2+2?"}]}, "4")
    mapped = await LearnedGate.load(path, models={"mixtral": "gpt-4o-mini"}).check(answer)
    unmapped = await LearnedGate.load(path).check(answer)
    assert mapped.ok and mapped.score > 0.99
    assert not unmapped.ok and unmapped.score == pytest.approx(0.5)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_config_check_and_serve_report_routing_errors_without_a_traceback(tmp_path):
    path = tmp_path / "thrifty.yaml"
    path.write_text(yaml.safe_dump(config({"cascade": {"tiers": ["gpt-4o-mini", "nope-model"]}})))
    for args in (("config", "check", str(path)), ("serve", "--config", str(path), "--port", "0")):
        done = run_cli(*args)
        assert done.returncode == 2, done.stderr
        assert f"config error: {W}.cascade.tiers.1: unknown model 'nope-model'" in done.stderr
        assert "Traceback" not in done.stderr and "listening" not in done.stderr


def test_a_served_baseline_without_a_price_is_a_config_error_for_check_and_serve(tmp_path):
    unpriced = config({**cascade(), "baseline": "house-model"})
    unpriced["models"]["house-model"] = {"deployments": [{"provider": "p"}]}  # served, but no price
    path = tmp_path / "thrifty.yaml"
    path.write_text(yaml.safe_dump(unpriced))
    serve = ("serve", "--config", str(path), "--port", "0")
    for args in (("config", "check", str(path)), serve, (*serve, "--workers", "2")):
        done = run_cli(*args)
        assert done.returncode == 2, done.stderr
        assert f"config error: {W}.baseline: no price for model 'house-model'" in done.stderr
        assert "Traceback" not in done.stderr and "listening" not in done.stderr


def test_every_model_a_learned_router_chooses_must_be_mapped_or_served(tmp_path):
    from tests.unit.test_routing_learned import synthetic_rows
    from thrifty.routing.data import from_rows
    from thrifty.routing.train import train

    model, _ = train(from_rows(synthetic_rows()).split()[0], None)
    path = str(model.save(tmp_path / "router.npz"))
    partial = {"learned": {"path": path, "models": {"tiny": "gpt-4o-mini", "huge": "gpt-4o"}}}
    errors = errors_of(partial)
    assert "'mid' is not mapped" in errors[f"{W}.learned.models"]
    full = {
        "learned": {"path": path, "models": {"tiny": "gpt-4o-mini", "mid": "gpt-4o-mini", "huge": "gpt-4o"}}
    }
    assert checked(full).routing.virtual_models["v"].learned is not None


def test_loading_a_config_does_not_read_the_files_it_names():
    missing = {"learned": {"path": "/nonexistent/router.npz"}}
    assert parse(config(missing), {}).routing.virtual_models["v"].learned is not None  # e.g. `thrifty report`
    assert f"{W}.learned.path" in errors_of(missing)
