"""`thrifty simulate` replays a recorded trace through the real Gateway and reports per-lever savings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from thrifty import config as config_mod
from thrifty.cli import main
from thrifty.config import Config
from thrifty.pricing.catalog import Catalog
from thrifty.simulate import TraceError, read_trace, run_simulation

CATALOG = Catalog.bundled()


def completion(text: str, prompt: int, completion_tokens: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": "chatcmpl-recorded",
        "object": "chat.completion",
        "model": "whatever-was-used",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }


def chat(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def list_cost(model: str, prompt: int, out: int) -> float:
    p = CATALOG.get(model)
    return (prompt * p.input + out * p.output) / 1e6


def write_trace(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    return path


def sim_config(tmp_path: Path, **extra: Any) -> Config:
    data = {"baseline_model": "gpt-4o", "ledger": {"path": str(tmp_path / "never-used.db")}, **extra}
    return config_mod.parse(data, env={})


TRACE = [
    {
        "request": chat("gpt-4o-mini", "Summarise the meeting notes"),
        "response": completion("Short summary.", 1200, 300),
        "timestamp": "2025-03-01T10:00:00Z",
        "tenant": "acme",
    },
    {
        "request": chat("gpt-4o-mini", "Translate 'hello' to French"),
        "response": completion("Bonjour", 40, 5),
        "timestamp": 1740823300,
        "tenant": "acme",
    },
    {
        "request": chat("gpt-4o", "Prove that sqrt(2) is irrational"),
        "response": completion("Assume p/q ...", 600, 900, cached=512),
        "tenant": "globex",
    },
    chat("gpt-4o-mini", "A request whose answer was not recorded"),
]


def test_routing_savings_from_the_baseline_model(tmp_path):
    trace = write_trace(tmp_path / "trace.jsonl", TRACE)
    outcome = run_simulation(trace, sim_config(tmp_path), by="tenant")
    t = outcome.report.totals
    assert outcome.replayed == 4 and outcome.with_answers == 3 and not outcome.skipped
    assert t.requests == 4 and t.answered == 4 and t.actual_usd > 0

    # measured rows: the recorded usage, priced on the served model against gpt-4o
    mini = [(1200, 300), (40, 5)]
    expected_routing = sum(list_cost("gpt-4o", i, o) - list_cost("gpt-4o-mini", i, o) for i, o in mini)
    # the unrecorded answer: estimated input from the local counter, output = median recorded length
    assert t.estimated_rows == 1
    assert outcome.estimated == 1
    assert t.output_tokens == 300 + 5 + 900 + 300  # median of (300, 5, 900) = 300
    est_in = t.input_tokens - (1200 + 40 + 600)
    expected_routing += list_cost("gpt-4o", est_in, 300) - list_cost("gpt-4o-mini", est_in, 300)
    assert t.saved_routing == pytest.approx(expected_routing, rel=1e-9)

    # gpt-4o on gpt-4o: no routing saving, only the provider prompt cache discount
    p4o = CATALOG.get("gpt-4o")
    assert t.saved_prompt_cache == pytest.approx(512 * (p4o.input - p4o.cached_input_rate) / 1e6, rel=1e-9)
    assert t.baseline_usd - t.saved_usd == pytest.approx(t.actual_usd, abs=1e-12)
    assert {g.group for g in outcome.report.groups} == {"acme", "globex", "default"}


def test_same_input_same_output(tmp_path):
    trace = write_trace(tmp_path / "trace.jsonl", TRACE)
    config = tmp_path / "c.yaml"
    config.write_text(f"baseline_model: gpt-4o\nledger:\n  path: {tmp_path / 'x.db'}\nproviders: {{}}\n")
    runner = CliRunner()
    runs = [
        runner.invoke(
            main, ["simulate", str(trace), "--config", str(config), "--format", fmt, "--no-progress"]
        )
        for fmt in ("json", "json", "table")
    ]
    assert all(r.exit_code == 0 for r in runs), runs[0].output
    assert runs[0].output == runs[1].output
    assert "4 requests replayed, 3 with recorded answers" in runs[2].output
    assert "− routing" in runs[2].output
    assert not (tmp_path / "x.db").exists()  # the configured ledger is never touched


@pytest.mark.skipif("cache" not in Config.model_fields, reason="no cache stage in this build yet")
def test_exact_cache_savings(tmp_path):
    repeat = {
        "request": chat("gpt-4o", "What is the capital of France?"),
        "response": completion("Paris", 20, 2),
    }
    trace = write_trace(tmp_path / "trace.jsonl", [repeat, repeat, repeat])
    outcome = run_simulation(trace, sim_config(tmp_path, cache={"enabled": True}))
    t = outcome.report.totals
    assert t.cache_hits_exact == 2
    assert t.saved_cache_exact == pytest.approx(2 * list_cost("gpt-4o", 20, 2), rel=1e-9)
    assert t.actual_usd == pytest.approx(list_cost("gpt-4o", 20, 2), rel=1e-9)


def test_bad_traces_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"request": {"model": "gpt-4o", "messages": []}}\nnot json\n')
    with pytest.raises(TraceError, match=r"bad.jsonl:2: not JSON"):
        read_trace(bad)
    bad.write_text('{"request": {"messages": []}}\n')
    with pytest.raises(TraceError, match="needs a `model`"):
        read_trace(bad)
    bad.write_text("\n")
    with pytest.raises(TraceError, match="no requests"):
        read_trace(bad)
    result = CliRunner().invoke(main, ["simulate", str(bad), "--no-progress"])
    assert result.exit_code == 1 and "no requests" in result.output
