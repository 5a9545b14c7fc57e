"""Failed summary attempts are ledger rows of kind "compression", like the paid summary call — not chat
errors of the summary model (which would count in its error figures and in chat traffic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import base_config, ledger_rows
from thrifty import config as config_mod
from thrifty.gateway import Gateway

SYSTEM = "You are the support assistant of Harrow Shipping. " + " ".join(
    f"Rule {i}: for route {i}, quote tariff code T-{i:03d} and say when the next ferry leaves."
    for i in range(40)
)


def gateway(fake: Any, tmp_path: Path, **summarize: Any) -> Gateway:
    config = base_config(fake)
    config["ledger"] = {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5}
    config["compression"] = {
        "normalize": {"enabled": False},
        "summarize": {
            "enabled": True,
            "model": "gpt-4o-mini",
            "min_tokens": 200,
            "target_tokens": 60,
            **summarize,
        },
    }
    return Gateway(config_mod.parse(config, env={}))


def ask() -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}],
    }


async def test_failed_summary_attempts_are_booked_as_compression_rows(fake, tmp_path):
    fake.script(*[{"status": 500}] * 3, model="gpt-4o-mini")
    async with gateway(fake, tmp_path) as gw:
        result = await gw.chat(ask())
    rows = ledger_rows(tmp_path / "ledger.db", expect=4, request_id=result.request_id)
    failed = [r for r in rows if r["served_model"] == "gpt-4o-mini"]
    assert len(failed) == 3
    for row in failed:
        assert (row["kind"], row["status"], row["http_status"], row["final"]) == (
            "compression",
            "error",
            500,
            0,
        )
        assert row["cost_usd"] == 0.0 and row["tenant_id"] == rows[-1]["tenant_id"]
        assert json.loads(row["meta"])["target_tokens"] == 60
    assert [(r["kind"], r["status"]) for r in rows if r["final"]] == [("chat", "ok")]
    assert not [r for r in rows if r["kind"] == "chat" and r["status"] == "error"]  # no chat errors
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4]


async def test_a_summary_call_cut_off_at_timeout_s_is_a_compression_row(fake, tmp_path):
    fake.script({"latency_ms": 3000, "content": "short"}, model="gpt-4o-mini")
    async with gateway(fake, tmp_path, timeout_s=0.2) as gw:
        result = await gw.chat(ask())
    assert fake.requests("/v1/chat/completions")[-1]["body"]["messages"][0]["content"] == SYSTEM
    rows = ledger_rows(tmp_path / "ledger.db", expect=2, request_id=result.request_id)
    abandoned = [r for r in rows if r["served_model"] == "gpt-4o-mini"]
    assert [(r["kind"], r["status"], r["http_status"]) for r in abandoned] == [("compression", "error", 499)]
