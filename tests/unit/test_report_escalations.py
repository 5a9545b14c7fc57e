"""Escalations in the savings report over a ledger written by a real Gateway's cascades.

Three requests through real cascades (tiers gpt-4o-mini → gpt-4o, fake provider upstream):

- `accepted`: a judge grades the cheap tier's answer 9/10, tier 1 answers (a judge row, no escalation);
- `judged`: the judge grades it 3/10, the tier is rejected, tier 2 answers (judge row + rejected tier);
- `empty`: the heuristic gate refuses an empty answer, tier 2 answers (rejected tier, no judge).

So 2 of the 3 answered requests escalated, 2 tiers were rejected, and both escalations belong to the
route that answered them (`cascade:tier2`). Judge calls cost money, never escalations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from tests.conftest import base_config
from thrifty import config as config_mod
from thrifty.cli import main
from thrifty.gateway import Gateway
from thrifty.ledger.base import Ledger
from thrifty.ledger.report import Filters, Totals, build_report

JUDGE = "gpt-4.1-mini"
TIERS = ["gpt-4o-mini", "gpt-4o"]


def cascade_config(fake: Any, ledger: dict[str, Any]) -> dict[str, Any]:
    config = base_config(fake)
    config["models"][JUDGE] = {"deployments": [{"provider": "fakeai"}]}
    config["ledger"] = {**ledger, "flush_interval_ms": 5}
    config["routing"] = {
        "virtual_models": {
            "thrifty/judged": {
                "cascade": {"tiers": TIERS, "gates": [{"type": "judge", "model": JUDGE, "min_score": 7}]}
            },
            "thrifty/plain": {"cascade": {"tiers": TIERS, "gates": [{"type": "heuristic"}]}},
        }
    }
    return config


def ask(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def run_scenario(gw: Gateway, fake: Any) -> None:
    fake.script({"content": "9"}, model=JUDGE)
    await gw.chat(ask("thrifty/judged", "What is 2 + 2?"), request_id="accepted")
    fake.script({"content": "3"}, model=JUDGE)
    await gw.chat(ask("thrifty/judged", "Prove Fermat's last theorem."), request_id="judged")
    fake.script({"content": ""}, model=TIERS[0])
    await gw.chat(ask("thrifty/plain", "Explain monads."), request_id="empty")


@pytest.fixture
async def ledger(ledger_where: dict[str, Any], fake: Any) -> AsyncIterator[Ledger]:
    """The scenario's ledger on each backend the report runs on."""
    async with Gateway(config_mod.parse(cascade_config(fake, ledger_where))) as gw:
        await run_scenario(gw, fake)
    yield gw.ledger


def by_group(groups: list[Totals]) -> dict[str | None, Totals]:
    return {g.group: g for g in groups}


def test_the_scenario_books_judge_calls_as_rejected_rows(ledger):
    rows = [(r["request_id"], r["status"], r["route"], r["error"]) for r in ledger.rows()]
    judge_rows = [r for r in rows if r[3] == "judge"]
    assert [(rid, status, route) for rid, status, route, _ in judge_rows] == [
        ("accepted", "rejected", "cascade:tier1"),
        ("judged", "rejected", "cascade:tier1"),
    ]
    assert sum(r[1] == "rejected" for r in rows) == 4  # two judge calls + two refused tiers


def test_report_escalations_ignore_judge_calls(ledger):
    t = build_report(ledger, Filters()).totals
    assert (t.requests, t.answered) == (3, 3)
    assert t.escalated == 2  # `judged` and `empty`; the judge call of `accepted` is no escalation
    assert t.rejected_attempts == 2  # tiers refused by a gate, judge calls excluded
    assert t.to_dict()["escalation_rate"] == pytest.approx(2 / 3)


def test_report_judge_calls_still_count_in_spend(ledger):
    rows = ledger.rows()
    t = build_report(ledger, Filters()).totals
    judge_usd = sum(r["cost_usd"] for r in rows if r["error"] == "judge")
    assert judge_usd > 0
    assert t.actual_usd == pytest.approx(sum(r["cost_usd"] for r in rows), abs=1e-12)
    assert t.rejected_usd == pytest.approx(
        sum(r["cost_usd"] for r in rows if r["status"] == "rejected"), abs=1e-12
    )


def test_report_by_route_counts_an_escalation_under_the_final_route(ledger):
    report = build_report(ledger, Filters(), by="route")
    groups = by_group(report.groups)
    assert set(groups) == {"cascade:tier1", "cascade:tier2"}
    tier1, tier2 = groups["cascade:tier1"], groups["cascade:tier2"]
    assert (tier1.answered, tier1.escalated) == (1, 0)
    assert (tier2.answered, tier2.escalated) == (2, 2)
    assert tier1.to_dict()["escalation_rate"] == 0 and tier2.to_dict()["escalation_rate"] == 1
    assert sum(g.escalated for g in report.groups) == report.totals.escalated
    # the refused tiers themselves are counted where they ran
    assert (tier1.rejected_attempts, tier2.rejected_attempts) == (2, 0)


def test_report_escalation_share_never_exceeds_the_answers(ledger):
    for by in ("route", "model", "tenant", "key"):
        for g in build_report(ledger, Filters(), by=by).groups:
            assert g.escalated <= g.answered, (by, g.group)
    only_tier2 = build_report(ledger, Filters(route="cascade:tier2")).totals
    assert (only_tier2.answered, only_tier2.escalated) == (2, 2)


async def test_cli_report_by_route_shows_escalation_shares(fake, tmp_path):
    config = cascade_config(fake, {"path": str(tmp_path / "ledger.db")})
    async with Gateway(config_mod.parse(config)) as gw:
        await run_scenario(gw, fake)
    config_file = tmp_path / "thrifty.yaml"
    config_file.write_text(f"ledger:\n  path: {tmp_path / 'ledger.db'}\nproviders: {{}}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["report", "--config", str(config_file), "--by", "route"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if "cascade:tier" in line}
    assert lines["cascade:tier1"].endswith(" 0 %") and lines["cascade:tier2"].endswith(" 100 %")
    assert "2 requests had a rejected cascade tier (66.7 %); 2 tiers rejected" in result.output
    data = orjson.loads(
        runner.invoke(main, ["report", "--config", str(config_file), "--format", "json"]).output
    )
    assert data["totals"]["escalated"] == 2 and data["totals"]["rejected_attempts"] == 2
