"""The savings report over a seeded SQLite ledger: every figure equals a hand-computed sum."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from thrifty.cli import main
from thrifty.ledger import insights
from thrifty.ledger.report import LEVERS, Filters, build_report, parse_time
from thrifty.ledger.report_render import render
from thrifty.ledger.sqlite import SQLiteLedger
from thrifty.types import Attempt, Savings, Usage

T0 = 1_700_000_000.0


def row(
    rid: str,
    n: int,
    status: str,
    *,
    tenant: str = "acme",
    key: str | None = "k1",
    model: str = "gpt-4o-mini",
    cost: float = 0.0,
    baseline: float = 0.0,
    ts: float = T0,
    latency: float = 100.0,
    tokens: tuple[int, int] = (100, 20),
    route: str | None = None,
    estimated: bool = False,
    reason: str | None = None,
    **saved: float,
) -> Attempt:
    return Attempt(
        request_id=rid,
        attempt=n,
        tenant_id=tenant,
        key_id=key,
        requested_model="gpt-4o",
        served_model=model,
        provider="p",
        deployment=f"p:{model}",
        status=status,
        usage=Usage(*tokens[:1], 0, 0, tokens[1], estimated=estimated),
        cost_usd=cost,
        baseline_cost_usd=baseline,
        savings=Savings(**saved),
        latency_ms=latency,
        final=status in ("ok", "cache_hit"),
        route=route,
        ts=ts,
        error="boom" if status == "error" else reason,
        http_status=500 if status == "error" else 200,
    )


SEED = [
    # routed to the small model: baseline 0.010, saved 0.009 by routing
    row("r1", 1, "ok", cost=0.001, baseline=0.010, routing=0.009, route="auto:chat", latency=120),
    # cascade: tier 1 rejected (paid 0.0005), tier 2 answers at 0.004 (baseline 0.010, cascade saved 0.006)
    row("r2", 1, "rejected", cost=0.0005, route="cascade", latency=80, reason="gate format: empty answer"),
    row(
        "r2",
        2,
        "ok",
        model="gpt-4.1-mini",
        cost=0.004,
        baseline=0.010,
        cascade=0.006,
        route="cascade",
        latency=300,
        ts=T0 + 10,
    ),
    # two failed attempts (one paid for a cut stream), then an answer with compression + prompt caching
    row("r3", 1, "error", model="gpt-4o", cost=0.0, tokens=(0, 0), ts=T0 + 3600),
    row("r3", 2, "error", model="gpt-4o", cost=0.0002, tokens=(50, 5), ts=T0 + 3600),
    row(
        "r3",
        3,
        "ok",
        model="gpt-4o",
        cost=0.005,
        baseline=0.008,
        compression=0.002,
        prompt_cache=0.001,
        ts=T0 + 3601,
        latency=900,
        estimated=True,
    ),
    # cache hits: exact and semantic, other tenant, no key
    row(
        "r4",
        1,
        "cache_hit",
        tenant="globex",
        key=None,
        baseline=0.010,
        cache_exact=0.010,
        ts=T0 + 7200,
        latency=2,
    ),
    row(
        "r5",
        1,
        "cache_hit",
        tenant="globex",
        key=None,
        baseline=0.010,
        cache_semantic=0.010,
        ts=T0 + 7300,
        latency=5,
    ),
    # a request that failed for good
    row("r6", 1, "error", tenant="globex", key="k2", model="gpt-4o", tokens=(0, 0), ts=T0 + 86400),
    # batching lever
    row(
        "r7",
        1,
        "ok",
        tenant="globex",
        key="k2",
        cost=0.002,
        baseline=0.006,
        routing=0.003,
        batching=0.001,
        ts=T0 + 86400,
        latency=50,
    ),
]


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    led = SQLiteLedger(str(tmp_path / "ledger.db"))
    led.start_sync()
    for attempt in SEED:
        led.record(attempt)
    led.close_sync()
    return led


def refused_tier(a: Attempt) -> bool:
    """A cascade tier a gate refused (booked with the reason `gate <name>: …`)."""
    return a.status == "rejected" and (a.error or "").startswith("gate ")


def hand(rows: list[Attempt]) -> dict[str, float]:
    final = [a for a in rows if a.final]
    out = {
        "actual_usd": sum(a.cost_usd for a in rows),
        "baseline_usd": sum(a.baseline_cost_usd for a in rows),
        "answers_usd": sum(a.cost_usd for a in final),
        "rejected_usd": sum(a.cost_usd for a in rows if a.status == "rejected"),
        "failed_usd": sum(a.cost_usd for a in rows if a.status == "error"),
        "requests": len({a.request_id for a in rows}),
        "answered": len({a.request_id for a in final}),
        "attempts": len(rows),
        "escalated": len({a.request_id for a in final} & {a.request_id for a in rows if refused_tier(a)}),
        "rejected_attempts": sum(refused_tier(a) for a in rows),
        "failed_attempts": sum(a.status == "error" for a in rows),
        "input_tokens": sum(a.usage.input_tokens for a in rows if a.status != "cache_hit"),
        "output_tokens": sum(a.usage.output_tokens for a in rows if a.status != "cache_hit"),
    }
    for lever in LEVERS:
        out[f"saved_{lever}"] = sum(getattr(a.savings, lever) for a in rows)
    return out


def test_totals_equal_hand_computed_sums(ledger):
    report = build_report(ledger, Filters())
    t = report.totals
    for name, expected in hand(SEED).items():
        assert getattr(t, name) == pytest.approx(expected, abs=1e-12), name
    assert t.cache_hits_exact == 1 and t.cache_hits_semantic == 1
    assert t.failed_requests == 1 and t.estimated_rows == 1
    assert t.unattributed_usd == pytest.approx(0, abs=1e-12)
    assert t.to_dict()["escalation_rate"] == pytest.approx(1 / 6)
    assert t.to_dict()["error_rate"] == pytest.approx(1 / 7)


def test_waterfall_adds_up_from_baseline_to_actual(ledger):
    report = build_report(ledger, Filters())
    steps = report.waterfall()
    assert steps[0].key == "baseline" and steps[-1].key == "actual"
    moves = sum(s.usd for s in steps if s.kind in ("lever", "overhead"))
    assert steps[0].usd + moves == pytest.approx(steps[-1].usd, abs=1e-12)
    by_key = {s.key: s for s in steps}
    assert by_key["routing"].usd == pytest.approx(-0.012)
    assert by_key["rejected"].usd == pytest.approx(0.0005)
    assert by_key["failed"].usd == pytest.approx(0.0002)
    assert by_key["actual"].pct_of_baseline == pytest.approx(100 * 0.0127 / 0.054)


def test_filters_and_groups(ledger):
    acme = build_report(ledger, Filters(tenant="acme")).totals
    assert acme.actual_usd == pytest.approx(sum(a.cost_usd for a in SEED if a.tenant_id == "acme"))
    day1 = build_report(ledger, Filters(since=T0 + 3600, until=T0 + 86400)).totals
    assert day1.requests == 3  # r3, r4, r5
    assert day1.baseline_usd == pytest.approx(0.028)
    report = build_report(ledger, Filters(), by="tenant")
    assert [g.group for g in report.groups] == ["acme", "globex"]
    assert sum(g.actual_usd for g in report.groups) == pytest.approx(report.totals.actual_usd)
    keys = build_report(ledger, Filters(), by="key").groups
    assert {g.group for g in keys} == {"k1", "k2", "(none)"}
    mix = {m.model: m for m in report.model_mix}
    assert sum(m.cost_usd for m in mix.values()) == pytest.approx(report.totals.actual_usd)
    assert mix["gpt-4o"].calls == 4 and mix["gpt-4o"].answers == 1


def test_insights_match_the_report(ledger):
    filters = Filters()
    span = insights.data_span(ledger, filters)
    assert span is not None and span.start == T0 and span.end == T0 + 86400
    bucket = insights.bucket_size(span)
    assert bucket == 3600
    points = insights.series(ledger, filters, bucket)
    assert sum(p["actual_usd"] for p in points) == pytest.approx(
        build_report(ledger, filters).totals.actual_usd
    )
    assert [p["ts"] for p in points] == sorted({math.floor(a.ts / 3600) * 3600 for a in SEED})
    lat = insights.latency(ledger, filters)
    finals = sorted(a.latency_ms for a in SEED if a.final)
    assert lat["count"] == len(finals) == 6
    assert lat["p50_ms"] == finals[2] and lat["p99_ms"] == finals[-1]
    top = insights.top_keys(ledger, filters)
    assert top[0]["key_id"] == "k1" and top[0]["actual_usd"] == pytest.approx(0.0107)
    errors = insights.recent_errors(ledger, filters)
    assert [e["request_id"] for e in errors] == ["r6", "r3", "r3"]


def test_renderers(ledger):
    report = build_report(ledger, Filters(), by="tenant", baseline_model="gpt-4o")
    table = render(report, "table")
    assert "baseline (all on gpt-4o)" in table and "$0.0540" in table and "+ rejected cascade tiers" in table
    data = orjson.loads(render(report, "json"))
    assert data["totals"]["actual_usd"] == pytest.approx(0.0127)
    assert [s["key"] for s in data["waterfall"]][-1] == "actual"
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [r["group"] for r in rows] == ["acme", "globex", "TOTAL"]
    assert float(rows[-1]["actual_usd"]) == pytest.approx(0.0127)


def test_parse_time():
    now = 1_000_000.0
    assert parse_time("7d", now) == now - 7 * 86400
    assert parse_time("24h", now) == now - 86400
    assert parse_time("30m", now) == now - 1800
    assert parse_time("2024-01-01", now) == 1704067200.0
    assert parse_time("2024-01-01T01:00:00+01:00", now) == 1704067200.0
    with pytest.raises(ValueError, match="relative span"):
        parse_time("last tuesday", now)
    for far in ("99999999d", "99999999999999999999d", "9999-12-31T23:59:59-05:00", "0001-01-01"):
        with pytest.raises(ValueError, match="out of range"):
            parse_time(far, now)


def test_cli_report(ledger, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"ledger:\n  path: {ledger.path}\nproviders: {{}}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["report", "--config", str(config), "--format", "json", "--by", "model"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.output)
    assert data["totals"]["baseline_usd"] == pytest.approx(0.054)
    assert data["group_by"] == "model"
    bad = runner.invoke(main, ["report", "--config", str(config), "--since", "soon"])
    assert bad.exit_code == 2 and "relative span" in bad.output
    for fmt in ("table", "json"):
        args = ["report", "--config", str(config), "--since", "99999999d", "--format", fmt]
        far = runner.invoke(main, args)
        assert far.exit_code == 2 and "out of range" in far.output and "Traceback" not in far.output
