"""Budgets, rate limits and state failures of one `thrifty serve` replica, over HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.conftest import base_config, ledger_rows
from tests.support.servers import free_port
from tests.support.stores import RedisServer
from thrifty.pricing.catalog import Catalog
from thrifty.pricing.tokens import TokenCounter

pytestmark = pytest.mark.e2e
MASTER = "mk-limits-master-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}
MAX_TOKENS = 40


def keyed_config(fake, **tenancy) -> dict:
    config = base_config(fake)
    config["server"] = {"master_key": MASTER}
    config["tenancy"] = tenancy
    return config


def create(gw, **body) -> dict:
    r = httpx.post(gw.url + "/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"question {i:03d}"}]


def worst_case(i: int = 0, model: str = "gpt-4o") -> float:
    """What the gateway reserves for one request: local prompt count (+1 per message) and max_tokens."""
    price = Catalog.bundled().get(model)
    msgs = messages(i)
    prompt = TokenCounter().count_messages(msgs) + len(msgs)
    return (prompt * price.input + MAX_TOKENS * price.output) / 1e6


async def fire(urls: list[str], key: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:

        async def one(i: int) -> httpx.Response:
            return await client.post(
                urls[i % len(urls)] + "/v1/chat/completions",
                json={"model": "gpt-4o", "max_tokens": MAX_TOKENS, "messages": messages(i)},
                headers={"authorization": f"Bearer {key}"},
            )

        return await asyncio.gather(*(one(i) for i in range(n)))


def spend_until_nearly_gone(url: str, key: str, budget: float, worst: float) -> int:
    """Sequential requests (each costing about its worst case) until less than 1.5 worst cases are left;
    returns how many were sent."""
    spent, sent = 0.0, 0
    while budget - spent > 1.5 * worst:
        body = {"model": "gpt-4o", "max_tokens": MAX_TOKENS, "messages": messages(0)}
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=body)
        assert r.status_code == 200, r.text
        spent += float(r.headers["x-thrifty-cost-usd"])
        sent += 1
    return sent


def check_budget_race(
    responses: list[httpx.Response], ledger_cost: float, budget: float, worst: float
) -> None:
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == len(responses), {r.status_code for r in responses}
    assert 1 <= len(ok) <= 2 and len(refused) >= 98
    error = refused[0].json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "budget_exceeded"
    assert "budget" in error["message"] and "$" in error["message"]
    overspend = ledger_cost - budget
    assert overspend <= worst, f"overspent by ${overspend:.6f}, one worst case is ${worst:.6f}"


def test_budget_holds_under_100_concurrent_requests(gateway_factory, fake):
    fake.set_default(latency_ms=300, usage={"completion_tokens": MAX_TOKENS})  # answers cost ~ worst case
    gw = gateway_factory(keyed_config(fake))
    budget, worst = 0.004, worst_case()
    key = create(gw, tenant="t", budgets={"total_usd": budget})
    spend_until_nearly_gone(gw.url, key["key"], budget, worst)
    responses = asyncio.run(fire([gw.url], key["key"], 100))
    time.sleep(0.3)  # the ledger writer batches
    rows = [r for r in ledger_rows(gw.ledger_path) if r["key_id"] == key["id"]]
    check_budget_race(responses, sum(r["cost_usd"] for r in rows), budget, worst)
    usage = httpx.get(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["usage"]
    assert usage["reserved"] == 0 and usage["total"] == pytest.approx(sum(r["cost_usd"] for r in rows))


def test_over_budget_can_answer_402(gateway_factory, fake):
    gw = gateway_factory(keyed_config(fake, budgets={"over_budget_status": 402}))
    key = create(gw, tenant="t", budgets={"daily_usd": 0.000001})
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=messages(1), max_tokens=MAX_TOKENS)
    assert exc.value.status_code == 402 and "daily budget" in exc.value.message


def test_rate_limit_headers_on_answers_streams_and_refusals(gateway_factory, fake):
    gw = gateway_factory(keyed_config(fake))
    key = create(gw, tenant="t", rate_limits={"rpm": 3, "tpm": 100_000})
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages(1))
    assert raw.headers["x-ratelimit-limit-requests"] == "3"
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=messages(2), stream=True
    ) as streamed:
        assert streamed.headers["x-ratelimit-remaining-requests"] == "1"
        text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    assert text == "echo: question 002"
    client.chat.completions.create(model="gpt-4o", messages=messages(3))
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o", messages=messages(4))
    headers = exc.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 20
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert exc.value.body["code"] == "rate_limit_exceeded"
    # another key has its own limits
    other = create(gw, tenant="t2", rate_limits={"rpm": 3})
    assert httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {other['key']}"},
                      json={"model": "gpt-4o", "messages": messages(5)}).status_code == 200  # fmt: skip


def test_redis_unreachable_fails_closed_for_budgets_and_shows_in_readyz(gateway_factory, fake, tmp_path):
    redis = RedisServer(tmp_path)
    gw = gateway_factory(keyed_config(fake, state={"redis_url": redis.url, "timeout_s": 0.5}))
    budgeted = create(gw, tenant="t", budgets={"daily_usd": 10})["key"]
    limited = create(gw, tenant="t", rate_limits={"rpm": 1000})["key"]

    def status(key: str) -> httpx.Response:
        return httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt-4o", "messages": messages(1)}, timeout=30)  # fmt: skip

    assert status(budgeted).status_code == 200
    assert httpx.get(gw.url + "/readyz").json()["checks"]["budgets(redis)"] == "ok"
    redis.stop()
    try:
        refused = status(budgeted)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "state_unavailable"
        assert refused.headers["retry-after"] == "1"
        assert status(limited).status_code == 200  # rate limits fail open by default
        assert status(MASTER).status_code == 200  # the master key has no budget
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["budgets(redis)"].endswith("fail_closed")
        assert "fail_open" in ready.json()["checks"]["rate_limits(redis)"]
    finally:
        redis = RedisServer(tmp_path, port=redis.port)  # comes back on the same address
    try:
        assert status(budgeted).status_code == 200
        assert httpx.get(gw.url + "/readyz").status_code == 200
    finally:
        redis.stop()
    gw.stop()
    assert "budgets state unreachable" in gw.output()  # logged


def test_fail_open_budgets_by_config(gateway_factory, fake):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    gw = gateway_factory(keyed_config(fake, state={"redis_url": dead, "timeout_s": 0.3},
                                      budgets={"on_state_error": "fail_open"}))  # fmt: skip
    key = create(gw, tenant="t", budgets={"daily_usd": 1}, rate_limits={"rpm": 5})["key"]
    r = httpx.post(gw.base_url + "/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "gpt-4o", "messages": messages(1)}, timeout=30)  # fmt: skip
    assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
    ready = httpx.get(gw.url + "/readyz")
    assert ready.status_code == 200 and "fail_open" in ready.json()["checks"]["budgets(redis)"]


def test_postgres_unreachable_fails_closed_for_keys(gateway_factory, fake, tmp_path):
    dsn = f"postgresql://nobody@/thrifty?host={tmp_path}/no-such-socket-dir&connect_timeout=1"
    gw = gateway_factory(keyed_config(fake, state={"postgres_dsn": dsn, "timeout_s": 0.5}))
    made = httpx.post(gw.url + "/admin/keys", json={"tenant": "t"}, headers=ADMIN)
    assert made.status_code == 503 and made.json()["error"]["code"] == "state_unavailable"
    r = httpx.post(gw.base_url + "/chat/completions", headers={"authorization": "Bearer sk-thr-" + "x" * 43},
                   json={"model": "gpt-4o", "messages": messages(1)}, timeout=30)  # fmt: skip
    assert r.status_code == 503
    assert httpx.post(gw.base_url + "/chat/completions", headers=ADMIN,
                      json={"model": "gpt-4o", "messages": messages(1)}).status_code == 200  # fmt: skip
    ready = httpx.get(gw.url + "/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["keys"].startswith("unreachable")


def test_a_budgeted_request_without_an_output_cap_is_sent_with_the_reserved_one(gateway_factory, fake):
    gw = gateway_factory(keyed_config(fake, budgets={"default_max_tokens": 64}))
    budgeted = create(gw, tenant="t", budgets={"daily_usd": 1.0})
    unbudgeted = create(gw, tenant="t")
    for key, sent in ((budgeted, 64), (unbudgeted, None)):
        client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=messages(2))
        assert fake.requests("/v1/chat/completions")[-1]["body"].get("max_tokens") == sent
    client = openai.OpenAI(base_url=gw.base_url, api_key=budgeted["key"], max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=messages(3), max_tokens=10)
    assert fake.requests("/v1/chat/completions")[-1]["body"]["max_tokens"] == 10  # the client's own cap


def test_a_budget_given_to_a_key_later_starts_from_what_it_already_spent(gateway_factory, fake):
    gw = gateway_factory(keyed_config(fake))
    key = create(gw, tenant="t")  # no budget, no rate limit
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    spent = 0.0
    for i in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=messages(i), max_tokens=MAX_TOKENS
        )
        spent += float(raw.headers["x-thrifty-cost-usd"])
    r = httpx.patch(
        f"{gw.url}/admin/keys/{key['id']}", json={"budgets": {"daily_usd": spent * 1.01}}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    usage = httpx.get(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["usage"]
    assert usage["daily"] == pytest.approx(spent)
    with pytest.raises(openai.RateLimitError) as exc:  # the earlier spend leaves no room for another
        client.chat.completions.create(model="gpt-4o", messages=messages(9), max_tokens=MAX_TOKENS)
    assert "daily budget" in exc.value.message


def test_embeddings_count_against_a_keys_budget_and_rate_limits(gateway_factory, fake):
    """Embeddings do not run the chat stages; their cost (input tokens x input price) is still reserved
    before the call, like a chat request's worst case, and settled with what the ledger books."""
    gw = gateway_factory(keyed_config(fake))
    words = " ".join(f"word{i}" for i in range(40))  # ~80 tokens at $0.02 / 1M
    key = create(gw, tenant="emb", budgets={"total_usd": 2.5e-6}, rate_limits={"rpm": 3})
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    first = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=words)
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    cost = float(first.headers["x-thrifty-cost-usd"])
    assert 1e-6 < cost < 2.5e-6 < 2 * cost
    usage = httpx.get(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["usage"]
    assert usage["total"] == pytest.approx(cost) and usage["reserved"] == 0
    with pytest.raises(openai.RateLimitError) as refused:  # would pass the budget: refused before upstream
        client.embeddings.create(model="text-embedding-3-small", input=words + " again")
    assert refused.value.body["code"] == "budget_exceeded"
    assert "may cost up to" in refused.value.body["message"]
    assert len(fake.requests("/v1/embeddings")) == 1
    small = create(gw, tenant="emb", budgets={"total_usd": 1e-6})  # one call costs more than it all
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=gw.base_url, api_key=small["key"], max_retries=0).embeddings.create(
            model="text-embedding-3-small", input=words
        )
    assert len(fake.requests("/v1/embeddings")) == 1

    limited = create(gw, tenant="emb", rate_limits={"rpm": 1})
    other = openai.OpenAI(base_url=gw.base_url, api_key=limited["key"], max_retries=0)
    other.embeddings.create(model="text-embedding-3-small", input="one")
    with pytest.raises(openai.RateLimitError) as throttled:
        other.embeddings.create(model="text-embedding-3-small", input="two")
    assert throttled.value.response.headers["retry-after"]
