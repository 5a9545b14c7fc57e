"""What the cache keeps and serves: only complete answers it can give back as they came, to a client
asking for JSON and to one asking for a stream.

A real Gateway and its cache stage on SQLite; the pipeline's terminal handler is replaced by a scripted
upstream, since these answers (legacy `function_call`, `audio`, reasoning text, no choices, no finish
reason) are ones the fake provider does not produce.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.test_cache_stage import ALICE, ask, gateway, stage_of
from thrifty.cache.entry import Entry, unstorable
from thrifty.gateway import Gateway
from thrifty.pipeline import Call, compose
from thrifty.streaming import ChatStream, replayable
from thrifty.types import Body, ChatResult, Usage

USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
FUNCTION_CALL = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
AUDIO = {"id": "audio_1", "data": "UklGRg==", "expires_at": 1_900_000_000, "transcript": "hello there"}


def completion(message: Body, finish: str | None = "stop") -> Body:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": None, **message},
        "finish_reason": finish,
    }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [choice],
        "usage": USAGE,
    }


def chunks(*deltas: Body, finish: str = "stop") -> list[Body]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    parts = [{"role": "assistant", "content": None}, *deltas]
    out = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in parts]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return [*out, {**base, "choices": [], "usage": USAGE}]


class Upstream:
    """The pipeline's terminal handler: answers every call with the scripted body, or chunks."""

    def __init__(self, body: Body | None = None, stream: list[Body] | None = None) -> None:
        self.body, self.stream, self.calls = body, stream, 0

    async def __call__(self, call: Call) -> ChatResult:
        self.calls += 1
        usage = Usage.from_openai(USAGE) or Usage()
        result = ChatResult(
            body={},
            request_id=call.request_id,
            served_model="gpt-4o",
            provider="scripted",
            cost_usd=0.001,
            usage=usage,
        )
        if not call.stream:
            assert self.body is not None
            result.body = self.body
            return result
        assert self.stream is not None
        result.stream = ChatStream(
            first=self.stream[0],
            rest=_iterate(self.stream[1:]),
            request_id=call.request_id,
            served_model="gpt-4o",
            provider="scripted",
            include_usage=False,
            finish=lambda *_: None,
            started=time.perf_counter(),
        )
        return result


async def _iterate(items: list[Body]) -> AsyncIterator[Body]:
    for item in items:
        yield item


def scripted(gw: Gateway, upstream: Upstream) -> Gateway:
    gw.handler = compose(gw.stages, upstream)
    return gw


async def read(gw: Gateway, text: str) -> tuple[str, list[Body]]:
    stream = await gw.chat_stream(ask(text, stream=True), ALICE)
    got = [chunk async for chunk in stream]
    await stream.aclose()
    return stream.headers["x-thrifty-cache"], got


def deltas(got: list[Body]) -> list[Body]:
    return [c["choices"][0]["delta"] for c in got if c["choices"] and c["choices"][0]["delta"]]


def finishes(got: list[Body]) -> list[str | None]:
    return [c["choices"][0]["finish_reason"] for c in got if c["choices"]][-1:]


async def test_a_streamed_legacy_function_call_is_stored_whole_and_replayed(fake, tmp_path: Path) -> None:
    parts = [
        {"function_call": {"name": "get_weather", "arguments": ""}},
        {"function_call": {"arguments": '{"city": '}},
        {"function_call": {"arguments": '"Paris"}'}},
    ]
    upstream = Upstream(stream=chunks(*parts, finish="function_call"))
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        assert (await read(gw, "weather?"))[0] == "miss"
        hit = await gw.chat(ask("weather?"), ALICE)
        outcome, replayed = await read(gw, "weather?")
    assert hit.headers["x-thrifty-cache"] == "hit-exact"
    assert hit.body["choices"][0]["message"]["function_call"] == FUNCTION_CALL
    assert hit.body["choices"][0]["finish_reason"] == "function_call"
    assert outcome == "hit-exact" and {"function_call": FUNCTION_CALL} in deltas(replayed)
    assert finishes(replayed) == ["function_call"]
    assert upstream.calls == 1


async def test_streamed_reasoning_text_is_kept_and_replayed(fake, tmp_path: Path) -> None:
    upstream = Upstream(
        stream=chunks({"reasoning_content": "six times "}, {"reasoning_content": "seven"}, {"content": "42"})
    )
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await read(gw, "6*7?")
        hit = await gw.chat(ask("6*7?"), ALICE)
        outcome, replayed = await read(gw, "6*7?")
    message = hit.body["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("six times seven", "42")
    assert outcome == "hit-exact"
    assert deltas(replayed)[1:] == [{"reasoning_content": "six times seven"}, {"content": "42"}]
    assert upstream.calls == 1


async def test_a_streamed_audio_answer_is_never_stored(fake, tmp_path: Path) -> None:
    upstream = Upstream(
        stream=chunks(
            {"audio": {"id": "audio_1", "transcript": "hello there"}}, {"audio": {"data": "UklGRg=="}}
        )
    )
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await read(gw, "say hello")
        assert (await read(gw, "say hello"))[0] == "miss"
    assert upstream.calls == 2  # before: stored as an empty answer and served as a free hit


async def test_a_delta_field_the_recorder_does_not_know_makes_the_stream_not_storable(
    fake, tmp_path: Path
) -> None:
    upstream = Upstream(stream=chunks({"content": "see "}, {"annotations": [{"type": "url_citation"}]}))
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await read(gw, "cite it")
        assert (await read(gw, "cite it"))[0] == "miss"
    assert upstream.calls == 2


async def test_an_audio_answer_is_never_stored(fake, tmp_path: Path) -> None:
    upstream = Upstream(body=completion({"audio": AUDIO}))
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await gw.chat(ask("say hello"), ALICE)
        assert (await gw.chat(ask("say hello"), ALICE)).headers["x-thrifty-cache"] == "miss"
    assert upstream.calls == 2


async def test_a_stored_function_call_is_replayed_to_a_stream(fake, tmp_path: Path) -> None:
    upstream = Upstream(body=completion({"function_call": FUNCTION_CALL}, finish="function_call"))
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await gw.chat(ask("weather?"), ALICE)
        outcome, replayed = await read(gw, "weather?")
    assert outcome == "hit-exact" and {"function_call": FUNCTION_CALL} in deltas(replayed)
    assert upstream.calls == 1


async def test_a_stored_answer_a_stream_cannot_carry_is_not_served_to_a_stream(fake, tmp_path: Path) -> None:
    citations = [{"type": "url_citation", "url_citation": {"url": "https://example.com"}}]
    upstream = Upstream(
        body=completion({"content": "see example.com", "annotations": citations}),
        stream=chunks({"content": "see example.com"}),
    )
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await gw.chat(ask("cite it"), ALICE)
        again = await gw.chat(ask("cite it"), ALICE)
        outcome, _ = await read(gw, "cite it")
    assert again.headers["x-thrifty-cache"] == "hit-exact"  # JSON gives it back whole
    assert again.body["choices"][0]["message"]["annotations"] == citations
    assert outcome == "miss"  # a replay would drop the annotations
    assert upstream.calls == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**completion({"content": "x"}), "choices": []}, "no choices"),
        (completion({"content": "The answer is"}, finish=None), "unfinished"),
        (completion({"content": ""}, finish="content_filter"), "content filter"),
    ],
)
async def test_an_incomplete_answer_is_not_stored(fake, tmp_path: Path, body: Body, reason: str) -> None:
    assert unstorable(body) == reason
    upstream = Upstream(body=body)
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        await gw.chat(ask("partial"), ALICE)
        assert (await gw.chat(ask("partial"), ALICE)).headers["x-thrifty-cache"] == "miss"
    assert upstream.calls == 2


@pytest.mark.parametrize(
    "body",
    [{**completion({"content": "x"}), "choices": []}, completion({"content": "The answer is"}, finish=None)],
)
async def test_an_incomplete_entry_already_stored_is_not_served(fake, tmp_path: Path, body: Body) -> None:
    from thrifty.cache.keys import Scope, exact_key

    upstream = Upstream(body=completion({"content": "complete"}), stream=chunks({"content": "complete"}))
    async with scripted(gateway(fake, tmp_path), upstream) as gw:
        key = exact_key(Scope(ALICE.id), ask("old entry"), "gpt-4o")
        usage = Usage.from_openai(USAGE) or Usage()
        await stage_of(gw).exact.store_answer(key, Entry(body, usage, "gpt-4o"), 3600)
        assert (await gw.chat(ask("old entry"), ALICE)).headers["x-thrifty-cache"] == "miss"
    assert upstream.calls == 1


def test_replayable_answers() -> None:
    assert replayable(completion({"content": "hi", "refusal": None, "annotations": []}))
    assert replayable(completion({"function_call": FUNCTION_CALL}, finish="function_call"))
    assert not replayable(completion({"content": "hi", "audio": AUDIO}))
    assert not replayable(completion({"content": "hi"}, finish=None))
    assert not replayable({**completion({"content": "hi"}), "choices": []})
    assert not replayable(completion({"content": [{"type": "text", "text": "hi"}]}))


def test_unstorable_keeps_only_complete_answers_without_provider_state() -> None:
    assert unstorable(completion({"content": "hi"})) is None
    assert unstorable(completion({"content": None, "audio": AUDIO})) == "audio"
    two = completion({"content": "a"})
    two["choices"].append({**two["choices"][0], "index": 1, "finish_reason": None})
    assert unstorable(two) == "unfinished"
