"""Live micro-batching in library mode against the fake provider: split, fallback, tenants, ledger."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty import Gateway
from thrifty.batching.coalesce import finished, unbatchable
from thrifty.batching.prompt import parse_items
from thrifty.config import parse
from thrifty.pricing.catalog import Catalog
from thrifty.tenancy.keys import Budgets
from thrifty.tenancy.runtime import tenancy_of
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
    return ledger_rows(tmp_path / "ledger.db")


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
        assert r.cost_usd == pytest.approx(sum(b["cost_usd"] for b in by_request[r.request_id]))
        assert r.attempts == 2  # the batched call and its own


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


# ---------------------------------------------------------------- what a batch cannot express per item

CAPPED = "one two three four five six seven"


async def test_a_request_with_its_own_output_cap_is_sent_alone(fake, tmp_path):
    """A batched item's answer cannot be cut where the provider would cut it alone (the provider
    tokenizes, the gateway only approximates) nor billed for only what the client sees: capped
    requests go alone and get exactly the provider's cut; the uncapped ones still batch."""
    async with gateway(fake, tmp_path) as gw:
        capped = [ask(gw, f"{CAPPED} {i}", max_tokens=5) for i in range(4)]
        capped += [ask(gw, f"{CAPPED} {i}", max_completion_tokens=5) for i in range(4, 6)]
        free = [ask(gw, f"free {i}") for i in range(3)]
        results = await asyncio.gather(*capped, *free)
    for r in results[:6]:
        (choice,) = r.body["choices"]
        assert choice["message"]["content"] == "echo: one two three"
        assert choice["finish_reason"] == "length"
        assert r.body["usage"]["completion_tokens"] <= 5 and r.usage.output_tokens <= 5
        assert "x-thrifty-batch-size" not in r.headers
    for i, r in enumerate(results[6:]):
        assert r.body["choices"][0]["message"]["content"] == f"echo: free {i}"
        assert r.body["choices"][0]["finish_reason"] == "stop"
        assert r.headers["x-thrifty-batch-size"] == "3"
    sent = fake.requests("/v1/chat/completions")
    assert (
        sorted(upstream_items(fake), key=lambda x: x is None)
        == [[f"free {i}" for i in range(3)]] + [None] * 6
    )
    (batch,) = [s["body"] for s in sent if parse_items(s["body"]["messages"][-1]["content"])]
    assert "max_tokens" not in batch and "max_completion_tokens" not in batch
    alone = [s["body"] for s in sent if s["body"] is not batch]
    assert (
        sorted(b.get("max_tokens") or b.get("max_completion_tokens") for b in alone if b != batch) == [5] * 6
    )
    booked = {b["request_id"]: b for b in rows(tmp_path)}
    for r in results[:6]:  # the ledger books what the provider billed for the capped answer
        row = booked[r.request_id]
        assert row["status"] == "ok" and row["output_tokens"] <= 5 and row["saved_batching"] == 0
        assert "batch" not in orjson.loads(row["meta"] or "{}")


@pytest.mark.parametrize(
    "extra",
    [
        {"stop": ["\n"]},  # inside the JSON array a newline is `\n`: the stop could never fire
        {"stop": "three"},
        {"seed": 0},  # a seed promises a reproducible answer; a batch's depends on its company
        {"seed": 7},
        {"presence_penalty": 0.5},  # penalties count tokens across every item's answer and the JSON
        {"frequency_penalty": -1},
        {"logit_bias": {"1": -100}},  # biases apply to the JSON framing too
        {"max_tokens": 400},  # even a cap the answer would not reach: it is the client's to apply
    ],
)
async def test_parameters_a_batch_cannot_express_per_item_are_sent_alone(fake, tmp_path, extra):
    async with gateway(fake, tmp_path) as gw:
        results = await asyncio.gather(*(ask(gw, f"p{i}", **extra) for i in range(3)))
    assert upstream_items(fake) == [None] * 3
    assert all("x-thrifty-batch-size" not in r.headers for r in results)
    for s in fake.requests("/v1/chat/completions"):
        assert all(s["body"][k] == v for k, v in extra.items())  # forwarded as the client set them


@pytest.mark.parametrize(
    "extra",
    [{"stop": None}, {"stop": []}, {"presence_penalty": 0}, {"logit_bias": {}}, {"seed": None},
     {"max_tokens": None}, {"temperature": 0.2, "top_p": 0.9}],
)  # fmt: skip
async def test_neutral_values_still_batch(fake, tmp_path, extra):
    async with gateway(fake, tmp_path) as gw:
        await asyncio.gather(*(ask(gw, f"p{i}", **extra) for i in range(3)))
    assert upstream_items(fake) == [["p0", "p1", "p2"]]


def test_unbatchable_names_the_reason():
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert unbatchable(base, base) is None
    assert unbatchable({**base, "max_tokens": 5}, {**base, "max_tokens": 5}) == "max_tokens"
    assert unbatchable(base, {**base, "max_completion_tokens": 5}) == "max_completion_tokens"
    # a cap only the gateway added (a budgeted key's default) is enforced per item, not a reason
    assert unbatchable({**base, "max_tokens": 4096}, base) is None
    assert unbatchable({**base, "seed": 0}, base) == "seed"
    assert unbatchable({**base, "stop": "x"}, base) == "stop"
    assert unbatchable({**base, "n": 2}, base) == "n"
    assert unbatchable({**base, "tools": [{"type": "function"}]}, base) == "tools"


def test_a_reply_that_did_not_finish_splits_nothing():
    reply = {"choices": [{"message": {"content": '[{"id": 1, "answer": "a"}]'}, "finish_reason": "length"}]}
    assert finished(reply) is False
    reply["choices"][0]["finish_reason"] = "stop"
    assert finished(reply) is True


async def test_a_budgeted_key_still_batches_and_its_default_cap_holds_per_item(fake, tmp_path):
    """The limits stage caps an uncapped request of a budgeted key at `default_max_tokens`. Those
    requests still batch (the client set no cap); an item whose answer could have been cut at that
    cap alone is re-sent alone instead of being handed an answer it would not have got."""
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "ledger.db")}
    data["batching"] = {"live": {"enabled": True, "models": ["gpt-4o-mini"], "window_ms": 80}}
    data["tenancy"] = {"enabled": True, "budgets": {"default_max_tokens": 24}}
    long = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
    async with Gateway(parse(data, {})) as gw:
        tenancy = tenancy_of(gw)
        _, key = await tenancy.directory.create("team", budgets=Budgets(total_usd=10.0))
        tenant = Tenant(id="team", key_id=key.id)

        def one(text: str):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": SYSTEM},
                                                         {"role": "user", "content": text}]}  # fmt: skip
            return gw.chat(body, tenant)

        results = await asyncio.gather(one("short 0"), one("short 1"), one(long))
    assert [r.body["choices"][0]["message"]["content"] for r in results[:2]] == [
        "echo: short 0",
        "echo: short 1",
    ]
    assert {r.headers.get("x-thrifty-batch-size") for r in results[:2]} == {"3"}
    batched, lone = upstream_items(fake)  # the limits stage awaits the key store: any order
    assert sorted(batched) == sorted(["short 0", "short 1", long]) and lone is None
    batch, alone = (s["body"] for s in fake.requests("/v1/chat/completions"))
    assert batch["max_tokens"] == 3 * (24 + 16)  # the items' caps, plus room for the JSON framing
    assert alone["max_tokens"] == 24
    assert results[2].body["choices"][0]["message"]["content"] == f"echo: {long}"  # as alone
    statuses = [b["status"] for b in rows(tmp_path) if b["request_id"] == results[2].request_id]
    assert statuses == ["rejected", "ok"]
