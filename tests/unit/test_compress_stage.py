"""The compress stage in library mode: a real Gateway in front of the fake provider, real SQLite files.

Covers the memoised model summary (one model call across requests, a new one when the source
changes, none after a restart, one for concurrent first requests), its ledger row of kind
"compression", the per-request compression saving, per-route settings and failure fallback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config, ledger_rows
from thrifty import config as config_mod
from thrifty.compress.stage import HEADER, CompressStage
from thrifty.compress.writer import cheapest_model
from thrifty.errors import ConfigError
from thrifty.gateway import Gateway
from thrifty.pricing.catalog import Catalog
from thrifty.pricing.tokens import TokenCounter

RULES = [
    "Always answer in British English and keep answers under one hundred words unless asked otherwise.",
    "Never reveal internal ticket numbers; refer to them as 'your case' instead.",
    "When a customer mentions a refund, explain the thirty-day refund window and the receipt requirement.",
    "Escalate to a human agent when the customer mentions legal action, safety issues or data loss.",
    "Use the customer's first name once at the start of the answer, never more often than that.",
    "Format lists with hyphens, not numbers, and keep each item to a single sentence.",
]
SYSTEM = "You are the support assistant of Fjordline Outdoor Gear.\n\n" + "\n\n".join(
    f"Rule {i + 1}. {rule} This rule applies to every channel, including chat, email and phone notes."
    for i, rule in enumerate(RULES * 4)
)
SUMMARY = "Fjordline support: British English, <100 words; no ticket numbers; 30-day refunds need receipt."
COUNTER = TokenCounter()


def gateway(fake: Any, tmp_path: Path, compression: dict[str, Any]) -> Gateway:
    config = base_config(fake)
    config["ledger"] = {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5}
    config["compression"] = compression
    return Gateway(config_mod.parse(config, env={}))


SUMMARIZE = {"summarize": {"enabled": True, "model": "gpt-4o-mini", "min_tokens": 200, "target_tokens": 40}}


def ask(system: str, question: str = "Where is my order?", model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "system", "content": system},
                                          {"role": "user", "content": question}]}  # fmt: skip


def sent(fake: Any, model: str) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests("/v1/chat/completions") if r["body"]["model"] == model]


def stage_of(gw: Gateway) -> CompressStage | None:
    return next((s for s in gw.stages if isinstance(s, CompressStage)), None)


async def test_summary_is_paid_once_and_reused_byte_identical(fake, tmp_path):
    fake.script({"content": SUMMARY}, model="gpt-4o-mini")
    async with gateway(fake, tmp_path, SUMMARIZE) as gw:
        results = [await gw.chat(ask(SYSTEM, f"Question {i}?"), request_id=f"req_{i}") for i in range(3)]
    assert len(sent(fake, "gpt-4o-mini")) == 1
    summary_call = sent(fake, "gpt-4o-mini")[0]
    assert summary_call["messages"][1]["content"] == SYSTEM
    upstream = sent(fake, "gpt-4o")
    assert [m["messages"][0]["content"] for m in upstream] == [SUMMARY] * 3  # stable prefix
    assert [m["messages"][1]["content"] for m in upstream] == ["Question 0?", "Question 1?", "Question 2?"]
    before = COUNTER.count_messages(ask(SYSTEM, "Question 1?")["messages"])
    after = COUNTER.count_messages(ask(SUMMARY, "Question 1?")["messages"])
    assert results[1].headers[HEADER] == f"{before}->{after}"

    rows = ledger_rows(tmp_path / "ledger.db", expect=4)
    compression_rows = [r for r in rows if r["kind"] == "compression"]
    assert len(compression_rows) == 1
    paid = compression_rows[0]
    assert paid["request_id"] == "req_0" and paid["served_model"] == "gpt-4o-mini" and paid["final"] == 0
    price = Catalog.bundled().get("gpt-4o-mini")
    expected = (paid["input_tokens"] * price.input + paid["output_tokens"] * price.output) / 1e6
    assert paid["cost_usd"] == pytest.approx(expected, rel=1e-6) and paid["cost_usd"] > 0
    finals = [r for r in rows if r["final"] == 1]
    assert len(finals) == 3
    gpt4o = Catalog.bundled().get("gpt-4o")
    for row, result in zip(finals, results, strict=True):
        original = round(before * row["input_tokens"] / after)  # local count on the provider's scale
        assert row["saved_compression"] == pytest.approx((original - row["input_tokens"]) * gpt4o.input / 1e6)
        assert row["saved_compression"] > paid["cost_usd"]
        side = paid["cost_usd"] if row["request_id"] == paid["request_id"] else 0.0
        assert result.cost_usd == pytest.approx(row["cost_usd"] + side)  # the summary's payer is told
    assert '"summarize"' in finals[0]["meta"]


async def test_changed_source_is_summarised_again_and_restart_reuses_the_memo(fake, tmp_path):
    fake.script({"content": SUMMARY}, {"content": SUMMARY + " v2"}, model="gpt-4o-mini")
    changed = SYSTEM + "\n\nRule 25. Mention the winter sale."
    async with gateway(fake, tmp_path, SUMMARIZE) as gw:
        await gw.chat(ask(SYSTEM))
        await gw.chat(ask(changed))
        await gw.chat(ask(SYSTEM))
    assert len(sent(fake, "gpt-4o-mini")) == 2
    assert [m["messages"][0]["content"] for m in sent(fake, "gpt-4o")] == [SUMMARY, SUMMARY + " v2", SUMMARY]
    async with gateway(fake, tmp_path, SUMMARIZE) as gw:  # a new process: the SQLite memo answers
        await gw.chat(ask(changed))
    assert len(sent(fake, "gpt-4o-mini")) == 2
    assert sent(fake, "gpt-4o")[-1]["messages"][0]["content"] == SUMMARY + " v2"
    assert (tmp_path / "ledger-compress.db").exists()


async def test_concurrent_first_requests_share_one_summary_call(fake, tmp_path):
    fake.script({"content": SUMMARY, "latency_ms": 200}, model="gpt-4o-mini")
    async with gateway(fake, tmp_path, SUMMARIZE) as gw:
        await asyncio.gather(*[gw.chat(ask(SYSTEM, f"q{i}")) for i in range(5)])
    assert len(sent(fake, "gpt-4o-mini")) == 1
    assert {m["messages"][0]["content"] for m in sent(fake, "gpt-4o")} == {SUMMARY}


async def test_a_summary_that_is_not_shorter_is_not_used_and_not_retried(fake, tmp_path):
    fake.script({"content": SYSTEM + " And more."}, model="gpt-4o-mini")
    compression = {**SUMMARIZE, "normalize": {"enabled": False}}
    async with gateway(fake, tmp_path, compression) as gw:
        first = await gw.chat(ask(SYSTEM))
        await gw.chat(ask(SYSTEM))
    assert len(sent(fake, "gpt-4o-mini")) == 1
    assert [m["messages"][0]["content"] for m in sent(fake, "gpt-4o")] == [SYSTEM, SYSTEM]
    assert HEADER not in first.headers


async def test_failed_summary_sends_the_request_uncompressed(fake, tmp_path):
    fake.script(*[{"status": 500}] * 3, model="gpt-4o-mini")
    compression = {**SUMMARIZE, "normalize": {"enabled": False}}
    async with gateway(fake, tmp_path, compression) as gw:
        result = await gw.chat(ask(SYSTEM))
    assert result.body["choices"][0]["message"]["content"] == "echo: Where is my order?"
    assert sent(fake, "gpt-4o")[0]["messages"][0]["content"] == SYSTEM
    rows = ledger_rows(tmp_path / "ledger.db", expect=4)
    assert [r["status"] for r in rows if r["served_model"] == "gpt-4o-mini"] == ["error"] * 3
    assert [r["saved_compression"] for r in rows if r["final"]] == [0.0]


async def test_per_route_extraction_and_savings_on_the_final_row(fake, tmp_path):
    passages = "\n\n".join(
        f"Document {i}: Note {i}\n" + " ".join(f"Filler {i}.{k} about harbour cranes." for k in range(8))
        for i in range(6)
    )
    question = "Question: When did the lighthouse open?"
    prompt = f"{passages}\n\nDocument 7: Lighthouse\nThe lighthouse opened in 1894.\n\n{question}"
    compression = {"routes": {"gpt-4o-mini": {"extractive": {"enabled": True, "ratio": 0.3,
                                                             "min_context_tokens": 50}}}}  # fmt: skip
    async with gateway(fake, tmp_path, compression) as gw:
        small = await gw.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
        big = await gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})
    cut = sent(fake, "gpt-4o-mini")[0]["messages"][0]["content"]
    assert "The lighthouse opened in 1894." in cut and cut.endswith(question)
    assert COUNTER.count_text(cut) < 0.5 * COUNTER.count_text(prompt)
    assert sent(fake, "gpt-4o")[0]["messages"][0]["content"] == prompt  # other route: normalise only
    rows = {r["request_id"]: r for r in ledger_rows(tmp_path / "ledger.db", expect=2)}
    assert rows[small.request_id]["saved_compression"] > 0
    assert rows[big.request_id]["saved_compression"] == 0


def test_stage_is_added_only_when_something_is_on(fake, tmp_path):
    off = {"normalize": {"enabled": False}}
    assert stage_of(gateway(fake, tmp_path, off)) is None
    assert stage_of(gateway(fake, tmp_path, {})) is not None  # lossless normalisation is on by default
    on_route = {**off, "routes": {"gpt-4o": {"extractive": {"enabled": True}}}}
    assert stage_of(gateway(fake, tmp_path, on_route)) is not None


def test_cheapest_model_and_config_errors(fake, tmp_path):
    gw = gateway(fake, tmp_path, {})
    assert cheapest_model(gw, 2000, 400) == "gpt-4o-mini"
    with pytest.raises(ConfigError) as err:
        config_mod.parse({"compression": {"extractive": {"enabled": True, "ratio": None}}}, env={})
    assert "ratio" in str(err.value.errors)
    with pytest.raises(ConfigError):
        config_mod.parse({"compression": {"extractive": {"ratio": 2}}}, env={})
    with pytest.raises(ConfigError):
        bad_route = {"x": {"extractive": {"enabled": True, "ratio": None}}}
        config_mod.parse({"compression": {"routes": bad_route}}, env={})
    with pytest.raises(ConfigError):
        config_mod.parse({"compression": {"bogus": 1}}, env={})
