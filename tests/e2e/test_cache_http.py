"""The cache through `thrifty serve`: the openai SDK and plain HTTP against a real server and the fake
provider; SQLite cache file; virtual keys for tenant isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e
MASTER = "mk-cache-master-key-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def cached_config(fake: Any, tmp_path: Path, **cache: Any) -> dict[str, Any]:
    config = base_config(fake)
    config["cache"] = {"enabled": True, "path": str(tmp_path / "cache.db"), **cache}
    return config


def client(gw: Any, key: str = "anything") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def ask(gw: Any, text: str, key: str = "anything", **kwargs: Any) -> Any:
    return client(gw, key).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], **kwargs
    )


def upstream_calls(fake: Any) -> int:
    return len(fake.requests("/v1/chat/completions"))


def test_exact_hit_through_the_sdk_is_free_and_booked_with_its_saving(gateway_factory, fake, tmp_path):
    gw = gateway_factory(cached_config(fake, tmp_path))
    miss = ask(gw, "What does HTTP 418 mean?")
    hit = ask(gw, "What  does HTTP 418 mean?")  # a whitespace run does not change the question
    assert miss.headers["x-thrifty-cache"] == "miss" and hit.headers["x-thrifty-cache"] == "hit-exact"
    assert float(hit.headers["x-thrifty-cost-usd"]) == 0 and hit.headers["x-thrifty-provider"] == "cache"
    first, second = miss.parse(), hit.parse()
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.id != first.id and second.model == "gpt-4o"
    assert second.usage.completion_tokens == first.usage.completion_tokens
    assert upstream_calls(fake) == 1
    rows = ledger_rows(gw.ledger_path, expect=2)
    row = next(r for r in rows if r["request_id"] == hit.headers["x-request-id"])
    miss_cost = float(miss.headers["x-thrifty-cost-usd"])
    assert row["status"] == "cache_hit" and row["cost_usd"] == 0
    assert row["saved_cache_exact"] == pytest.approx(miss_cost, rel=1e-6) and miss_cost > 0
    assert first.usage.model_extra["cost"] == pytest.approx(miss_cost)  # the cost is in the body too
    assert second.usage.model_extra["cost"] == 0


@pytest.mark.parametrize(
    ("headers", "body", "param"),
    [
        ({"x-thrifty-cache": "sometimes"}, {}, "x-thrifty-cache"),
        ({"x-thrifty-cache-max-age": "-5"}, {}, "x-thrifty-cache-max-age"),
        ({"x-thrifty-cache-max-age": "soon"}, {}, "x-thrifty-cache-max-age"),
        ({"x-thrifty-cache-namespace": "has space"}, {}, "x-thrifty-cache-namespace"),
        ({}, {"thrifty": {"cache": 3}}, "thrifty.cache"),
        ({}, {"thrifty": {"max_age": "later"}}, "thrifty.max_age"),
        ({}, {"thrifty": "off"}, "thrifty"),
    ],
)
def test_bad_cache_control_is_a_clear_400(gateway_factory, fake, tmp_path, headers, body, param):
    gw = gateway_factory(cached_config(fake, tmp_path))
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **body}
    r = httpx.post(gw.base_url + "/chat/completions", json=payload, headers=headers)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and param in error["message"]
    assert upstream_calls(fake) == 0


def test_header_control_and_the_thrifty_field_never_reach_the_provider(gateway_factory, fake, tmp_path):
    gw = gateway_factory(cached_config(fake, tmp_path))
    r = ask(gw, "ns question", extra_headers={"x-thrifty-cache-namespace": "team-docs"})
    assert r.headers["x-thrifty-cache"] == "miss"
    assert ask(gw, "ns question").headers["x-thrifty-cache"] == "miss"  # other namespace
    hit = ask(gw, "ns question", extra_body={"thrifty": {"namespace": "team-docs"}})
    assert hit.headers["x-thrifty-cache"] == "hit-exact"
    off = ask(gw, "ns question", extra_headers={"x-thrifty-cache": "off"})
    assert off.headers["x-thrifty-cache"] == "bypass"
    assert all("thrifty" not in req["body"] for req in fake.requests("/v1/chat/completions"))


def test_streaming_clients_get_a_well_formed_replay(gateway_factory, fake, tmp_path):
    gw = gateway_factory(cached_config(fake, tmp_path))
    sdk = client(gw)

    def stream(usage: bool) -> tuple[list[Any], dict[str, str]]:
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "replay me"}], stream=True,
            stream_options={"include_usage": usage},
        )  # fmt: skip
        return list(raw.parse()), dict(raw.headers)

    first, first_headers = stream(usage=False)  # miss: captured while streaming, stored at the end
    replayed, headers = stream(usage=True)
    assert first_headers["x-thrifty-cache"] == "miss" and headers["x-thrifty-cache"] == "hit-exact"
    text = "".join(c.choices[0].delta.content or "" for c in replayed if c.choices)
    assert text == "".join(c.choices[0].delta.content or "" for c in first if c.choices) == "echo: replay me"
    assert len({c.id for c in replayed}) == 1 and all(c.object == "chat.completion.chunk" for c in replayed)
    assert replayed[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
    assert replayed[-1].choices == [] and replayed[-1].usage.completion_tokens > 0
    assert replayed[-1].usage.model_extra["cost"] == 0  # a hit costs nothing
    plain = {"model": "gpt-4o", "messages": [{"role": "user", "content": "replay me"}], "stream": True}
    raw = httpx.post(gw.base_url + "/chat/completions", json=plain)
    frames = [f for f in raw.text.split("\n\n") if f]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert frames[-1] == "data: [DONE]" and all(f.startswith("data: ") for f in frames)
    assert upstream_calls(fake) == 1


def test_entries_survive_a_restart(gateway_factory, fake, tmp_path):
    config = cached_config(fake, tmp_path)
    first = gateway_factory(config)
    assert ask(first, "persist me").headers["x-thrifty-cache"] == "miss"
    assert first.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a graceful shutdown
    second = gateway_factory(config)
    assert ask(second, "persist me").headers["x-thrifty-cache"] == "hit-exact"
    assert upstream_calls(fake) == 1


def test_ttl_expiry_over_http(gateway_factory, fake, tmp_path):
    import time

    gw = gateway_factory(cached_config(fake, tmp_path, ttl_s=3))
    ask(gw, "short lived")
    stored = time.monotonic()
    assert ask(gw, "short lived").headers["x-thrifty-cache"] == "hit-exact"
    time.sleep(max(0.0, 3.2 - (time.monotonic() - stored)))
    assert ask(gw, "short lived").headers["x-thrifty-cache"] == "miss"


def test_virtual_keys_of_two_tenants_never_share_entries(gateway_factory, fake, tmp_path):
    config = cached_config(fake, tmp_path)
    config["server"] = {"master_key": MASTER}
    gw = gateway_factory(config)

    def key(tenant: str) -> str:
        r = httpx.post(gw.url + "/admin/keys", json={"tenant": tenant}, headers=ADMIN)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    a1, a2, b = key("team-a"), key("team-a"), key("team-b")
    assert ask(gw, "our secret roadmap?", key=a1).headers["x-thrifty-cache"] == "miss"
    assert ask(gw, "our secret roadmap?", key=a2).headers["x-thrifty-cache"] == "hit-exact"  # same tenant
    assert ask(gw, "our secret roadmap?", key=b).headers["x-thrifty-cache"] == "miss"
    assert upstream_calls(fake) == 2
    rows = ledger_rows(gw.ledger_path, expect=3)
    assert {r["tenant_id"] for r in rows if r["status"] == "cache_hit"} == {"team-a"}

    scrape = httpx.get(gw.url + "/metrics", headers=ADMIN)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape.text)
        for s in family.samples
    }
    hits = ("thrifty_cache_namespace_lookups_total", (("namespace", "default"), ("result", "hit_exact")))
    misses = ("thrifty_cache_namespace_lookups_total", (("namespace", "default"), ("result", "miss")))
    assert samples[hits] == 1 and samples[misses] == 2
    assert samples[("thrifty_cache_namespace_saved_usd_total", (("namespace", "default"),))] > 0
    # the ledger-fed series agrees with the per-namespace one, and a bypass is not a miss
    assert ask(gw, "hot take?", key=b, temperature=1).headers["x-thrifty-cache"] == "bypass"
    ledger_rows(gw.ledger_path, expect=4)
    scrape = httpx.get(gw.url + "/metrics", headers=ADMIN)
    booked = {
        s.labels["result"]: s.value
        for family in text_string_to_metric_families(scrape.text)
        for s in family.samples
        if s.name == "thrifty_cache_lookups_total"
    }
    assert booked == {"hit_exact": 1, "miss": 2, "bypass": 1}


def test_concurrent_writers_in_several_workers_share_one_sqlite_cache(gateway_factory, fake, tmp_path):
    import asyncio

    gw = gateway_factory(cached_config(fake, tmp_path), args=["--workers", "2"])

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=60) as http:
            bodies = [
                {"model": "gpt-4o", "messages": [{"role": "user", "content": f"concurrent {i % 10}"}]}
                for i in range(60)
            ]
            return await asyncio.gather(*[http.post("/chat/completions", json=b) for b in bodies])

    first = asyncio.run(burst())
    assert [r.status_code for r in first] == [200] * 60
    again = asyncio.run(burst())
    assert {r.headers["x-thrifty-cache"] for r in again} == {"hit-exact"}
    assert all(
        r.json()["choices"][0]["message"]["content"] == f"echo: concurrent {i % 10}"
        for i, r in enumerate(again)
    )


def test_identical_requests_at_once_make_one_upstream_call(gateway_factory, fake, tmp_path):
    import asyncio

    gw = gateway_factory(cached_config(fake, tmp_path))
    fake.set_default(latency_ms=300)
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Same question, same second"}]}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            return list(
                await asyncio.gather(
                    *(http.post(gw.base_url + "/chat/completions", json=payload) for _ in range(6))
                )
            )

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.headers["x-thrifty-cache"] for r in responses) == ["hit-exact"] * 5 + ["miss"]
    assert len({r.json()["choices"][0]["message"]["content"] for r in responses}) == 1
    assert upstream_calls(fake) == 1
