"""`thrifty report --by namespace` over a ledger written by a real Gateway's cache stage.

Eight requests through a real Gateway (exact + semantic cache, fake provider upstream), one tenant:

- namespace `default`: a miss, its exact hit, another miss;
- namespace `support-bot`: the same first question (a miss: namespaces do not share entries), its exact
  hit, a miss and a semantic hit on it (the same question without its question mark);
- one request with caching off: the cache never looked it up, so it has no namespace ("(none)").

Expected figures are recomputed from the ledger rows themselves (savings, `meta.cache_lookup_ms`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from statistics import fmean
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tests.conftest import base_config
from thrifty import config as config_mod
from thrifty.cache.semantic import CosineVerifier
from thrifty.cache.stage import CacheStage
from thrifty.cli import main
from thrifty.errors import UpstreamError
from thrifty.gateway import Gateway
from thrifty.ledger.base import Ledger
from thrifty.ledger.report import Filters, Totals, build_report
from thrifty.ledger.sqlite import SQLiteLedger
from thrifty.types import Tenant

ALICE = Tenant(id="alice")
SUPPORT = {"namespace": "support-bot"}
SCENARIO: tuple[tuple[str, str, dict[str, Any] | None, str], ...] = (
    # request id, question, `thrifty` field, expected x-thrifty-cache
    ("d1", "Name three prime numbers.", None, "miss"),
    ("d2", "Name three prime numbers.", None, "hit-exact"),
    ("d3", "Explain TCP slow start.", None, "miss"),
    ("s1", "Name three prime numbers.", SUPPORT, "miss"),
    ("s2", "Name three prime numbers.", SUPPORT, "hit-exact"),
    ("s3", "What is the capital of France?", SUPPORT, "miss"),
    ("s4", "What is the capital city of France?", SUPPORT, "hit-semantic"),
    ("u1", "Write a haiku about autumn.", {"cache": "off"}, "bypass"),
)


def cache_config(fake: Any, tmp_path: Path, ledger: dict[str, Any]) -> dict[str, Any]:
    config = base_config(fake)
    config["ledger"] = {**ledger, "flush_interval_ms": 5}
    config["cache"] = {"enabled": True, "path": str(tmp_path / "cache.db"), "semantic": True}
    return config


async def run_scenario(gw: Gateway) -> None:
    stage = next(s for s in gw.stages if isinstance(s, CacheStage))
    assert stage.semantic is not None
    # the reworded question only: cosine 0.95, unrelated questions of the scenario < 0.2
    stage.semantic.verifier = CosineVerifier(0.9)
    for rid, text, thrifty, outcome in SCENARIO:
        body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
        if thrifty is not None:
            body["thrifty"] = thrifty
        result = await gw.chat(body, ALICE, request_id=rid)
        assert result.headers["x-thrifty-cache"] == outcome, rid


async def scenario_ledger(fake: Any, tmp_path: Path, where: dict[str, Any]) -> Ledger:
    async with Gateway(config_mod.parse(cache_config(fake, tmp_path, where))) as gw:
        await run_scenario(gw)
    return gw.ledger


@pytest.fixture
async def ledger(ledger_where: dict[str, Any], fake: Any, tmp_path: Path) -> AsyncIterator[Ledger]:
    """The scenario's ledger on each backend the report runs on."""
    yield await scenario_ledger(fake, tmp_path, ledger_where)


def meta(row: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(row["meta"]) if row["meta"] else {}


def rows_of(ledger: Ledger, namespace: str | None) -> list[dict[str, Any]]:
    return [r for r in ledger.rows() if meta(r).get("cache_namespace") == namespace]


def by_group(groups: list[Totals]) -> dict[str | None, Totals]:
    return {g.group: g for g in groups}


def test_every_looked_up_row_carries_its_namespace_and_lookup_time(ledger):
    rows = {r["request_id"]: meta(r) for r in ledger.rows()}
    assert {rid for rid, m in rows.items() if "cache_namespace" in m} == {r[0] for r in SCENARIO[:-1]}
    assert all(isinstance(m["cache_lookup_ms"], float) for rid, m in rows.items() if rid != "u1")
    assert "cache_lookup_ms" not in rows["u1"] and rows["u1"]["cache"] == "bypass"


def test_report_by_namespace_counts_hits_per_namespace(ledger):
    groups = by_group(build_report(ledger, Filters(), by="namespace").groups)
    assert set(groups) == {"default", "support-bot", "(none)"}
    default, support, none = groups["default"], groups["support-bot"], groups["(none)"]
    assert (default.requests, default.cache_hits_exact, default.cache_hits_semantic) == (3, 1, 0)
    assert (support.requests, support.cache_hits_exact, support.cache_hits_semantic) == (4, 1, 1)
    assert (none.requests, none.cache_hits) == (1, 0)
    assert default.to_dict(lookup=True)["cache_hit_rate"] == pytest.approx(1 / 3)
    assert support.to_dict(lookup=True)["cache_hit_rate"] == pytest.approx(2 / 4)
    assert none.to_dict(lookup=True)["cache_hit_rate"] == 0


def test_report_by_namespace_sums_the_hit_rows_savings(ledger):
    groups = by_group(build_report(ledger, Filters(), by="namespace").groups)
    for name in ("default", "support-bot"):
        hits = [r for r in rows_of(ledger, name) if r["status"] == "cache_hit"]
        exact = sum(r["saved_cache_exact"] for r in hits)
        semantic = sum(r["saved_cache_semantic"] for r in hits)
        assert exact > 0
        assert groups[name].saved_cache_exact == pytest.approx(exact, abs=1e-12)
        assert groups[name].saved_cache_semantic == pytest.approx(semantic, abs=1e-12)
    assert groups["support-bot"].saved_cache_semantic > 0 and groups["default"].saved_cache_semantic == 0
    assert groups["(none)"].saved_cache_usd == 0


def test_report_by_namespace_averages_the_lookup_time_of_final_rows(ledger):
    groups = by_group(build_report(ledger, Filters(), by="namespace").groups)
    for name in ("default", "support-bot"):
        want = fmean(meta(r)["cache_lookup_ms"] for r in rows_of(ledger, name) if r["final"] == 1)
        assert groups[name].cache_lookup_ms == pytest.approx(want, rel=1e-9)
    assert groups["(none)"].cache_lookup_ms is None


def test_the_namespace_groups_add_up_to_the_totals(ledger):
    report = build_report(ledger, Filters(), by="namespace")
    assert sum(g.requests for g in report.groups) == report.totals.requests == len(SCENARIO)
    assert sum(g.cache_hits for g in report.groups) == report.totals.cache_hits == 3
    assert sum(g.actual_usd for g in report.groups) == pytest.approx(report.totals.actual_usd, abs=1e-12)


async def test_failed_attempts_and_failed_requests_stay_in_their_namespace(fake, tmp_path):
    """A request answered by its fallback after upstream errors, and one that fails outright: every row
    of each carries the namespace, so the groups add up to the totals."""
    config = config_mod.parse(cache_config(fake, tmp_path, {"path": str(tmp_path / "l.db")}))
    async with Gateway(config) as gw:
        fake.script(*[{"status": 500}] * 3, model="flaky-up")
        answered = {"model": "flaky", "messages": [{"role": "user", "content": "Q1"}], "thrifty": SUPPORT}
        await gw.chat(answered, ALICE, request_id="fallback")
        fake.script(*[{"status": 500}] * 3, model="gpt-4o")
        failing = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Q2"}], "thrifty": SUPPORT}
        with pytest.raises(UpstreamError):
            await gw.chat(failing, ALICE, request_id="failed")
    rows = [r for r in gw.ledger.rows() if r["request_id"] in ("fallback", "failed")]
    assert len(rows) == 3 + 1 + 3 and {r["status"] for r in rows} == {"error", "ok"}
    assert {meta(r).get("cache_namespace") for r in rows} == {"support-bot"}
    report = build_report(gw.ledger, Filters(), by="namespace")
    (group,) = report.groups
    assert (group.group, group.requests, group.failed_requests) == ("support-bot", 2, 1)
    assert group.failed_attempts == report.totals.failed_attempts == 6


def test_filters_apply_to_the_namespace_grouping(ledger):
    groups = by_group(build_report(ledger, Filters(tenant="nobody"), by="namespace").groups)
    assert groups == {}


def test_other_groupings_do_not_compute_the_lookup_time(ledger):
    report = build_report(ledger, Filters(), by="tenant")
    assert [g.cache_lookup_ms for g in report.groups] == [None]
    assert "cache_lookup_ms" not in report.to_dict()["groups"][0]
    assert "cache_lookup_ms" not in report.to_dict()["totals"]


def test_a_meta_field_name_is_never_sql(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "l.db"))
    assert ledger.meta_text("cache_namespace") == "json_extract(meta, '$.cache_namespace')"
    with pytest.raises(ValueError, match="not a meta field name"):
        ledger.meta_text("x') OR 1=1 --")
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        build_report(ledger, Filters(), by="colour")


@pytest.fixture
async def config_file(fake: Any, tmp_path: Path) -> Path:
    await scenario_ledger(fake, tmp_path, {"path": str(tmp_path / "ledger.db")})
    path = tmp_path / "thrifty.yaml"
    path.write_text(f"ledger:\n  path: {tmp_path / 'ledger.db'}\nproviders: {{}}\n")
    return path


def cli(config_file: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["report", "--config", str(config_file), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_report_by_namespace_json(config_file):
    data = orjson.loads(cli(config_file, "--by", "namespace", "--format", "json"))
    assert data["group_by"] == "namespace"
    groups = {g["group"]: g for g in data["groups"]}
    assert set(groups) == {"default", "support-bot", "(none)"}
    assert (groups["support-bot"]["requests"], groups["support-bot"]["cache_hits"]) == (4, 2)
    assert groups["support-bot"]["cache_hit_rate"] == pytest.approx(0.5)
    assert groups["default"]["cache_lookup_ms"] > 0 and groups["(none)"]["cache_lookup_ms"] is None
    assert "cache_lookup_ms" not in data["totals"]


def test_cli_report_by_namespace_table_and_csv(config_file):
    table = cli(config_file, "--by", "namespace")
    lines = {line.split()[0]: line for line in table.splitlines() if line.startswith("  ")}
    assert lines["by"].split()[-4:] == ["cache", "saved", "lookup", "ms"]
    assert lines["support-bot"].split()[7] == "50"  # cache hit rate: "50 %"
    assert lines["(none)"].split()[-2:] == ["$0.00", "-"]
    assert "lookup ms" not in cli(config_file, "--by", "tenant")
    rows = list(csv.DictReader(io.StringIO(cli(config_file, "--by", "namespace", "--format", "csv"))))
    assert [r["group"] for r in rows][-1] == "TOTAL" and rows[-1]["cache_lookup_ms"] == ""
    by_name = {r["group"]: r for r in rows}
    assert float(by_name["default"]["cache_lookup_ms"]) > 0 and by_name["(none)"]["cache_lookup_ms"] == ""
    assert "cache_lookup_ms" not in cli(config_file, "--by", "route", "--format", "csv")
