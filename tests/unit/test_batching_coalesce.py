"""Live micro-batching in library mode against the fake provider: split, fallback, tenants, ledger."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import orjson
import pytest

from tests.conftest import base_config
from thrifty import Gateway
from thrifty.batching.prompt import parse_items
from thrifty.config import parse
from thrifty.pricing.catalog import Catalog
from thrifty.types import Tenant

SYSTEM = (
    "Classify the sentiment of the user's text as positive, negative or neutral. Answer in one word.\n"
    + (
        "Guidelines: sarcasm counts as negative; mixed reviews are neutral unless one side dominates; "
        "complaints about delivery alone are neutral; praise of price alone is positive. "
    )
    * 12
).strip()  # ~450 tokens shared by every item
PRICE = Catalog.bundled().get("gpt-4o-mini")


def gateway(fake, tmp_path, **live) -> Gateway:
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "ledger.db")}
    data["batching"] = {"live": {"enabled": True, "models": ["gpt-4o-mini"], "window_ms": 80, **live}}
    return Gateway(parse(data, {}))


def ask(gw: Gateway, text: str, tenant: str = "default", system: str = SYSTEM, **extra):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": system},
                                                 {"role": "user", "content": text}], **extra}  # fmt: skip
    return gw.chat(body, Tenant(id=tenant))


def rows(tmp_path) -> list[dict]:
    conn = sqlite3.connect(tmp_path / "ledger.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM ledger ORDER BY id")]
    finally:
        conn.close()


def upstream_items(fake) -> list[list[str] | None]:
    """Per upstream chat request: the batched item texts, or None for a request sent alone."""
    return [parse_items(r["body"]["messages"][-1]["content"]) for r in fake.requests("/v1/chat/completions")]


async def test_concurrent_requests_become_one_call_and_split_back(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        texts = [f"review {i}: the product was fine" for i in range(5)]
        results = await asyncio.gather(*(ask(gw, t) for t in texts))
    assert [r.body["choices"][0]["message"]["content"] for r in results] == [f"echo: {t}" for t in texts]
    assert upstream_items(fake) == [texts]
    (sent,) = fake.requests("/v1/chat/completions")
    assert sent["body"]["messages"][0] == {"role": "system", "content": SYSTEM}
    assert {r.headers["x-thrifty-batch-size"] for r in results} == {"5"}
    assert len({r.body["id"] for r in results}) == 5
    booked = rows(tmp_path)
    assert sorted(r["request_id"] for r in booked) == sorted(r.request_id for r in results)
    assert all(r["status"] == "ok" and r["final"] == 1 for r in booked)
    # the shares add up to the one call the provider billed
    upstream = results[0].body["usage"]
    total_in = sum(r["input_tokens"] for r in booked)
    assert total_in == sum(r.usage.input_tokens for r in results)
    batched_prompt = sum(r.usage.input_tokens for r in results)
    assert sum(r["cost_usd"] for r in booked) == pytest.approx(
        (batched_prompt * PRICE.input + sum(r["output_tokens"] for r in booked) * PRICE.output) / 1e6
    )
    assert upstream["prompt_tokens"] == results[0].usage.input_tokens
    for r in booked:  # every item saved its shared system prompt; savings add up per row
        assert r["saved_batching"] > 0
        assert r["baseline_cost_usd"] - r["cost_usd"] == pytest.approx(
            r["saved_batching"] + r["saved_prompt_cache"] + r["saved_routing"] + r["saved_compression"]
        )
        assert orjson.loads(r["meta"])["batch"]["size"] == 5


async def test_wrong_number_of_items_resends_the_unsplit_ones_alone(fake, tmp_path):
    fake.script({"content": orjson.dumps([{"id": 1, "answer": "positive"}]).decode()})  # 1 of 3
    async with gateway(fake, tmp_path) as gw:
        results = await asyncio.gather(*(ask(gw, f"text {i}") for i in range(3)))
    answers = [r.body["choices"][0]["message"]["content"] for r in results]
    assert answers == ["positive", "echo: text 1", "echo: text 2"]
    assert upstream_items(fake) == [["text 0", "text 1", "text 2"], None, None]
    booked = rows(tmp_path)
    by_request = {r.request_id: [b for b in booked if b["request_id"] == r.request_id] for r in results}
    assert [b["status"] for b in by_request[results[0].request_id]] == ["ok"]
    for r in results[1:]:  # its share of the wasted call, then its own call
        assert [b["status"] for b in by_request[r.request_id]] == ["rejected", "ok"]
        assert by_request[r.request_id][0]["cost_usd"] > 0


@pytest.mark.parametrize(
    "content",
    [
        orjson.dumps([{"id": i, "answer": f"a{i}"} for i in (1, 2, 3, 4)]).decode(),  # an extra item
        orjson.dumps([{"id": 1, "answer": "a"}, {"id": 1, "answer": "b"}, {"id": 2, "answer": "c"}]).decode(),
        "I'm sorry, here you go: positive, negative, neutral",  # not JSON
    ],
)
async def test_unsplittable_answers_never_reach_a_client(fake, tmp_path, content):
    fake.script({"content": content})
    async with gateway(fake, tmp_path) as gw:
        results = await asyncio.gather(*(ask(gw, f"text {i}") for i in range(3)))
    assert [r.body["choices"][0]["message"]["content"] for r in results] == [
        f"echo: text {i}" for i in range(3)
    ]
    assert [s["status"] for s in rows(tmp_path)].count("rejected") == 3


async def test_batches_never_mix_tenants_or_system_prompts(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        jobs = [ask(gw, f"a{i}", tenant="team-a") for i in range(3)]
        jobs += [ask(gw, f"b{i}", tenant="team-b") for i in range(3)]
        jobs += [ask(gw, f"c{i}", tenant="team-a", system="Translate to French.") for i in range(2)]
        results = await asyncio.gather(*jobs)
    expected = [f"echo: {p}{i}" for p, n in (("a", 3), ("b", 3), ("c", 2)) for i in range(n)]
    assert [r.body["choices"][0]["message"]["content"] for r in results] == expected
    groups = sorted(tuple(items) for items in upstream_items(fake))
    assert groups == [("a0", "a1", "a2"), ("b0", "b1", "b2"), ("c0", "c1")]
    tenants = {r["request_id"]: r["tenant_id"] for r in rows(tmp_path)}
    assert [tenants[r.request_id] for r in results] == ["team-a"] * 3 + ["team-b"] * 3 + ["team-a"] * 2


async def test_caps_streams_other_models_and_the_window(fake, tmp_path):
    async with gateway(fake, tmp_path, max_items=2, window_ms=50) as gw:
        results = await asyncio.gather(*(ask(gw, f"q{i}") for i in range(5)))
        assert sorted(len(i or [None]) for i in upstream_items(fake)) == [1, 2, 2]  # 2 + 2 + 1 alone
        fake.reset()
        started = time.perf_counter()
        lone = await ask(gw, "alone")
        waited = time.perf_counter() - started
        assert lone.body["choices"][0]["message"]["content"] == "echo: alone"
        assert 0.045 < waited < 1.0  # waits for company at most one window
        assert upstream_items(fake) == [None]
        fake.reset()
        stream_body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "s"}]}
        streams = await asyncio.gather(*(gw.chat_stream(stream_body) for _ in range(3)))
        for s in streams:
            assert "".join([c["choices"][0]["delta"].get("content") or "" async for c in s if c["choices"]])
        others = await asyncio.gather(
            *(
                gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": f"o{i}"}]})
                for i in range(3)
            )
        )
        assert [o.body["choices"][0]["message"]["content"] for o in others] == [
            "echo: o0",
            "echo: o1",
            "echo: o2",
        ]
        assert upstream_items(fake) == [None] * 6  # streams and unlisted models go alone
    assert [r.body["choices"][0]["message"]["content"] for r in results] == [f"echo: q{i}" for i in range(5)]


async def test_upstream_failure_of_the_batch_falls_back_to_single_calls(fake, tmp_path):
    fake.script({"status": 400})
    async with gateway(fake, tmp_path) as gw:
        results = await asyncio.gather(*(ask(gw, f"t{i}") for i in range(3)))
    assert [r.body["choices"][0]["message"]["content"] for r in results] == [
        "echo: t0",
        "echo: t1",
        "echo: t2",
    ]
    booked = rows(tmp_path)
    (error,) = [b for b in booked if b["status"] == "error"]
    assert error["request_id"].startswith("batch_")
    assert sorted(b["status"] for b in booked) == ["error", "ok", "ok", "ok"]
