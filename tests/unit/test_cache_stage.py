"""The cache stage in library mode: a real Gateway in front of the fake provider, real SQLite files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config, ledger_rows
from thrifty import config as config_mod
from thrifty.cache.semantic import CosineVerifier
from thrifty.cache.stage import CacheStage
from thrifty.errors import InvalidRequest
from thrifty.gateway import Gateway
from thrifty.types import Tenant

ALICE, BOB = Tenant(id="alice"), Tenant(id="bob")


def gateway(fake: Any, tmp_path: Path, **cache: Any) -> Gateway:
    config = base_config(fake)
    config["ledger"] = {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5}
    config["cache"] = {"enabled": True, "path": str(tmp_path / "cache.db"), **cache}
    return Gateway(config_mod.parse(config))


def stage_of(gw: Gateway) -> CacheStage:
    return next(s for s in gw.stages if isinstance(s, CacheStage))


def ask(text: str, **params: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **params}


def upstream_calls(fake: Any) -> int:
    return len(fake.requests("/v1/chat/completions"))


async def test_hits_are_scoped_per_tenant(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        first = await gw.chat(ask("What is the boiling point of water?"), ALICE)
        again = await gw.chat(ask("What is the boiling point of water?"), ALICE)
        other = await gw.chat(ask("What is the boiling point of water?"), BOB)
    assert first.headers["x-thrifty-cache"] == "miss" and first.cost_usd > 0
    assert again.headers["x-thrifty-cache"] == "hit-exact" and again.cost_usd == 0 and again.cached
    assert again.body["choices"] == first.body["choices"] and again.body["id"] != first.body["id"]
    assert again.body["model"] == "gpt-4o" and again.provider == "cache"
    assert other.headers["x-thrifty-cache"] == "miss"  # Bob never gets Alice's entry
    assert upstream_calls(fake) == 2


async def test_a_hit_is_booked_at_zero_cost_with_the_saving(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        miss = await gw.chat(ask("Name three primes."), ALICE, request_id="req_miss")
        await gw.chat(ask("Name three primes."), ALICE, request_id="req_hit")
    rows = {r["request_id"]: r for r in ledger_rows(tmp_path / "ledger.db", expect=2)}
    hit = rows["req_hit"]
    assert hit["status"] == "cache_hit" and hit["cost_usd"] == 0 and hit["final"] == 1
    assert hit["saved_cache_exact"] == pytest.approx(miss.cost_usd, rel=1e-6)
    assert hit["baseline_cost_usd"] == pytest.approx(miss.cost_usd, rel=1e-6)
    assert hit["input_tokens"] == miss.usage.input_tokens and hit["output_tokens"] == miss.usage.output_tokens
    snapshot = stage_of(gw).metrics.snapshot()["default"]
    assert (snapshot["hit_exact"], snapshot["miss"], snapshot["stores"]) == (1, 1, 1)
    assert snapshot["saved_usd"] == pytest.approx(miss.cost_usd, rel=1e-6)


async def test_control_modes_max_age_and_namespaces(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        q = "Explain TCP slow start."
        r = await gw.chat(ask(q, thrifty={"cache": "read_only"}), ALICE)
        assert r.headers["x-thrifty-cache"] == "miss"
        r = await gw.chat(ask(q), ALICE)
        assert r.headers["x-thrifty-cache"] == "miss"  # read_only stored nothing
        r = await gw.chat(ask(q, thrifty={"cache": "write_only"}), ALICE)
        assert r.headers["x-thrifty-cache"] == "miss"  # write_only never reads
        r = await gw.chat(ask(q, thrifty={"cache": "off"}), ALICE)
        assert r.headers["x-thrifty-cache"] == "bypass"
        r = await gw.chat(ask(q, thrifty={"max_age": 0}), ALICE)
        assert r.headers["x-thrifty-cache"] == "miss"  # every entry is older than 0 s
        r = await gw.chat(ask(q, thrifty={"max_age": 3600}), ALICE)
        assert r.headers["x-thrifty-cache"] == "hit-exact"
        r = await gw.chat(ask(q, thrifty={"namespace": "other"}), ALICE)
        assert r.headers["x-thrifty-cache"] == "miss"
    assert upstream_calls(fake) == 6
    # the thrifty field never reached the provider
    assert all("thrifty" not in req["body"] for req in fake.requests("/v1/chat/completions"))


async def test_bad_control_values_are_400s(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        with pytest.raises(InvalidRequest) as exc:
            await gw.chat(ask("hi", thrifty={"cache": "sometimes"}), ALICE)
    assert exc.value.param == "thrifty.cache" and upstream_calls(fake) == 0


async def test_nondeterministic_requests_are_not_cached_unless_allowed(fake, tmp_path):
    overrides = {"gpt-4o-mini": {"allow_nondeterministic": True}}
    async with gateway(fake, tmp_path, models=overrides) as gw:
        for _ in range(2):
            r = await gw.chat(ask("Write a poem.", temperature=0.9), ALICE)
            assert r.headers["x-thrifty-cache"] == "bypass"
        await gw.chat({**ask("Write a poem.", temperature=0.9), "model": "gpt-4o-mini"}, ALICE)
        r = await gw.chat({**ask("Write a poem.", temperature=0.9), "model": "gpt-4o-mini"}, ALICE)
        assert r.headers["x-thrifty-cache"] == "hit-exact"
        r = await gw.chat(ask("Write a poem.", temperature=0), ALICE)
        r = await gw.chat(ask("Write a poem.", temperature=0), ALICE)
        assert r.headers["x-thrifty-cache"] == "hit-exact"


async def test_per_model_override_disables_caching(fake, tmp_path):
    async with gateway(fake, tmp_path, models={"gpt-4o-mini": {"enabled": False}}) as gw:
        for _ in range(2):
            r = await gw.chat({**ask("hello"), "model": "gpt-4o-mini"}, ALICE)
            assert r.headers["x-thrifty-cache"] == "bypass"


async def test_a_stream_is_stored_when_it_completes_and_replayed_to_streams(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        stream = await gw.chat_stream(ask("Stream this answer", stream=True), ALICE)
        assert stream.headers["x-thrifty-cache"] == "miss"
        text = "".join([c["choices"][0]["delta"].get("content") or "" async for c in stream if c["choices"]])
        await stream.aclose()
        hit = await gw.chat(ask("Stream this answer"), ALICE)
        assert hit.headers["x-thrifty-cache"] == "hit-exact"
        assert hit.body["choices"][0]["message"]["content"] == text == "echo: Stream this answer"
        assert hit.body["choices"][0]["finish_reason"] == "stop" and hit.usage.output_tokens > 0

        replay = await gw.chat_stream(ask("Stream this answer", stream=True), ALICE)
        assert replay.headers["x-thrifty-cache"] == "hit-exact"
        chunks = [c async for c in replay]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == text
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert upstream_calls(fake) == 1


async def test_a_stream_cut_midway_is_not_stored(fake, tmp_path):
    fake.script({"drop": "mid_stream", "content": "a long answer that will be cut"})
    async with gateway(fake, tmp_path) as gw:
        stream = await gw.chat_stream(ask("cut me", stream=True), ALICE)
        with pytest.raises(Exception):  # noqa: B017 - the upstream cut surfaces as an error
            async for _ in stream:
                pass
        await stream.aclose()
        r = await gw.chat(ask("cut me"), ALICE)
        assert r.headers["x-thrifty-cache"] == "miss"


async def test_follow_up_turns_never_hit_across_conversations(fake, tmp_path):
    def conversation(person: str, last: str) -> dict[str, Any]:
        return {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": f"Who is {person}?"},
                {"role": "assistant", "content": f"{person} is a well-known public figure."},
                {"role": "user", "content": last},
            ],
        }

    async with gateway(fake, tmp_path, semantic=True) as gw:
        stage_of(gw).semantic.verifier = CosineVerifier(0.5)  # permissive: only the scope protects
        await gw.chat(conversation("Barack Obama", "how old is he?"), ALICE)
        people = ["Tom Hanks", "Elon Musk", "Lionel Messi", "Keanu Reeves", "Joe Biden", "Roger Federer"]
        follow_ups = ["how old is he?", "How old is he?", "what is his age?"]
        for i, person in enumerate(people):  # each asked once, after a different first turn
            r = await gw.chat(conversation(person, follow_ups[i % 3]), ALICE)
            assert r.headers["x-thrifty-cache"] == "miss", person
        # the same conversation does hit semantically: the scope, not a dead cache, kept them apart
        same = await gw.chat(conversation("Barack Obama", "How old is he"), ALICE)
        assert same.headers["x-thrifty-cache"] == "hit-semantic"
        bob = await gw.chat(conversation("Barack Obama", "How old is he"), BOB)
        assert bob.headers["x-thrifty-cache"] == "miss"
    rows = ledger_rows(tmp_path / "ledger.db", expect=9)
    semantic_rows = [r for r in rows if r["status"] == "cache_hit"]
    assert len(semantic_rows) == 1 and semantic_rows[0]["saved_cache_semantic"] > 0


async def test_a_stream_without_usage_is_stored_with_its_estimated_usage(fake, tmp_path):
    fake.script({"omit_usage": True, "content": "an answer whose provider counts nothing"})
    async with gateway(fake, tmp_path) as gw:
        stream = await gw.chat_stream(ask("count me", stream=True), ALICE)
        assert [c async for c in stream] and stream.usage is None
        await stream.aclose()
        hit = await gw.chat(ask("count me"), ALICE)
        assert hit.headers["x-thrifty-cache"] == "hit-exact"
        usage = hit.body["usage"]  # a client reading usage from a hit always finds it
        assert usage["completion_tokens"] == hit.usage.output_tokens > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        replay = await gw.chat_stream(
            ask("count me", stream=True, stream_options={"include_usage": True}), ALICE
        )
        chunks = [c async for c in replay]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_logprobs_are_kept_from_a_stream_and_replayed_to_one(fake, tmp_path):
    question = ask("log my probabilities", logprobs=True, top_logprobs=2)
    async with gateway(fake, tmp_path) as gw:
        stream = await gw.chat_stream({**question, "stream": True}, ALICE)
        streamed = [
            token for c in [c async for c in stream] for ch in c["choices"]
            for token in ((ch.get("logprobs") or {}).get("content") or ())
        ]  # fmt: skip
        await stream.aclose()
        assert len(streamed) > 1  # the fake sends them over several chunks
        hit = await gw.chat(question, ALICE)
        assert hit.headers["x-thrifty-cache"] == "hit-exact"
        assert hit.body["choices"][0]["logprobs"]["content"] == streamed
        replay = await gw.chat_stream({**question, "stream": True}, ALICE)
        replayed = [
            token for c in [c async for c in replay] for ch in c["choices"]
            for token in ((ch.get("logprobs") or {}).get("content") or ())
        ]  # fmt: skip
        assert replay.headers["x-thrifty-cache"] == "hit-exact" and replayed == streamed
        assert all(len(t["top_logprobs"]) == 2 for t in replayed)
    assert upstream_calls(fake) == 1


async def test_a_bypassed_stream_says_so_in_its_headers(fake, tmp_path):
    async with gateway(fake, tmp_path) as gw:
        for params in ({"temperature": 0.8}, {"thrifty": {"cache": "off"}}):
            stream = await gw.chat_stream(ask("not cached", stream=True, **params), ALICE)
            assert stream.headers["x-thrifty-cache"] == "bypass"
            assert [c async for c in stream]
            await stream.aclose()


async def test_identical_requests_in_flight_make_one_upstream_call(fake, tmp_path):
    import asyncio

    fake.set_default(latency_ms=300)
    async with gateway(fake, tmp_path) as gw:
        results = await asyncio.gather(*(gw.chat(ask("the same question"), ALICE) for _ in range(8)))
        outcomes = sorted(r.headers["x-thrifty-cache"] for r in results)
        assert outcomes == ["hit-exact"] * 7 + ["miss"]
        assert {r.body["choices"][0]["message"]["content"] for r in results} == {"echo: the same question"}
        other = await gw.chat(ask("the same question"), BOB)  # another tenant never shares the wait
        assert other.headers["x-thrifty-cache"] == "miss"
    assert upstream_calls(fake) == 2


async def test_twins_of_a_streamed_leader_wait_for_its_end(fake, tmp_path):
    import asyncio

    fake.set_default(chunk_delay_ms=40)

    async def streamed() -> str:
        stream = await gw.chat_stream(ask("stream once", stream=True), ALICE)
        text = "".join([c["choices"][0]["delta"].get("content") or "" async for c in stream if c["choices"]])
        await stream.aclose()
        return text

    async with gateway(fake, tmp_path) as gw:
        leader = asyncio.create_task(streamed())
        await asyncio.sleep(0.05)
        twins = await asyncio.gather(*(gw.chat(ask("stream once"), ALICE) for _ in range(3)))
        assert [t.headers["x-thrifty-cache"] for t in twins] == ["hit-exact"] * 3
        assert await leader == twins[0].body["choices"][0]["message"]["content"]
    assert upstream_calls(fake) == 1


async def test_when_the_leader_fails_its_twins_go_upstream_themselves(fake, tmp_path):
    import asyncio

    fake.script({"status": 400, "latency_ms": 200})  # the first request fails (not retried)
    async with gateway(fake, tmp_path) as gw:
        results = await asyncio.gather(
            *(gw.chat(ask("fragile"), ALICE) for _ in range(3)), return_exceptions=True
        )
    assert sum(isinstance(r, Exception) for r in results) == 1
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) == 2 and all(r.body["choices"][0]["message"]["content"] for r in answered)
    # one of them led next; the other waited for it instead of calling too
    assert sorted(r.headers["x-thrifty-cache"] for r in answered) == ["hit-exact", "miss"]
    assert upstream_calls(fake) == 2


async def test_a_twin_that_accepts_no_stored_answer_does_not_wait(fake, tmp_path):
    import asyncio
    import time

    fake.script({"latency_ms": 800})  # the leader is slow; later calls are not
    async with gateway(fake, tmp_path) as gw:
        leader = asyncio.create_task(gw.chat(ask("fresh only"), ALICE))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        fresh = await gw.chat(ask("fresh only", thrifty={"max_age": 0}), ALICE)
        assert time.monotonic() - started < 0.6 and fresh.headers["x-thrifty-cache"] == "miss"
        await leader


async def test_coalescing_can_be_turned_off(fake, tmp_path):
    import asyncio

    fake.set_default(latency_ms=200)
    async with gateway(fake, tmp_path, coalesce_wait_s=0) as gw:
        results = await asyncio.gather(*(gw.chat(ask("no waiting"), ALICE) for _ in range(4)))
    assert [r.headers["x-thrifty-cache"] for r in results] == ["miss"] * 4
    assert upstream_calls(fake) == 4


async def test_an_answer_cut_by_the_content_filter_is_not_stored(fake, tmp_path):
    fake.script({"content": "", "finish_reason": "content_filter"})
    async with gateway(fake, tmp_path) as gw:
        first = await gw.chat(ask("a borderline question"), ALICE)
        assert first.body["choices"][0]["finish_reason"] == "content_filter"
        again = await gw.chat(ask("a borderline question"), ALICE)
        assert again.headers["x-thrifty-cache"] == "miss"
        assert again.body["choices"][0]["finish_reason"] == "stop"
    assert upstream_calls(fake) == 2
