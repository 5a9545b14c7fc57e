"""An Anthropic stream commits nothing to the client before its first content, and its stop reasons
that mean "cut short" map to `length`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_anthropic_stream import START, FakeResponse, run_stream, sse
from thrifty.config import ProviderConfig, RetryConfig, Timeouts
from thrifty.errors import UpstreamError
from thrifty.providers.anthropic import AnthropicProvider
from thrifty.providers.anthropic_response import finish_reason, to_openai_response
from thrifty.providers.breaker import Breaker
from thrifty.providers.pool import ProviderPool
from thrifty.providers.table import Deployment
from thrifty.types import Body

MODEL = "claude-sonnet-4-5"
PING = {"type": "ping"}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
EMPTY_TEXT = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


def text_delta(piece: str) -> Body:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}


def finish(stop_reason: str, output_tokens: int = 3) -> list[Body]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


def deltas(chunks: list[Body]) -> list[Body]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


# ── the translator holds the role back ───────────────────────────────────────────────────────────


def test_nothing_is_emitted_before_the_first_content_so_an_early_error_comes_first() -> None:
    translator, chunks = run_stream([START, PING, EMPTY_TEXT, PING])
    assert chunks == []
    with pytest.raises(UpstreamError) as info:
        translator.feed("error", OVERLOADED)
    assert info.value.retryable and info.value.upstream_status == 529


def test_the_role_comes_on_the_first_chunk_just_before_the_first_content() -> None:
    _, chunks = run_stream(
        [START, PING, EMPTY_TEXT, text_delta("Hi"), text_delta(" there"), *finish("end_turn")]
    )
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {"content": " there"},
        {},
    ]
    assert all(c["id"] == "msg_s" and c["model"] == MODEL for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_a_tool_call_is_content_too() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "wx", "input": {}}
    _, chunks = run_stream([START, {"type": "content_block_start", "index": 0, "content_block": block}])
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert deltas(chunks)[1]["tool_calls"][0]["function"]["name"] == "wx"


def test_a_stream_without_content_still_sends_the_role_then_the_finish() -> None:
    _, chunks = run_stream([START, PING, *finish("end_turn", 1)])
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, "stop"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 42


# ── the pool retries and fails over an error after message_start ──────────────────────────────────


class ScriptedHttp:
    """The provider's HTTP pool, answering each POST with the next scripted response."""

    def __init__(self, responses: list[FakeResponse]) -> None:
        self.responses = responses

    def upstream(self, name: str, max_connections: int | None = None) -> ScriptedHttp:
        return self

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> FakeResponse:
        return self.responses.pop(0)


class Table:
    def __init__(self, deployments: list[Deployment]) -> None:
        self.deps = deployments

    def deployments(self, model: str) -> list[Deployment]:
        return self.deps

    def fallbacks(self, model: str) -> list[str]:
        return []


def anthropic(name: str, *streams: list[Body]) -> AnthropicProvider:
    http = ScriptedHttp([FakeResponse(200, lines=sse(events)) for events in streams])
    return AnthropicProvider(name, ProviderConfig(type="anthropic", api_key="k"), http)  # type: ignore[arg-type]


def pool(*providers: AnthropicProvider, retries: int) -> ProviderPool:
    deployments = [Deployment(p, MODEL, None, priority=i) for i, p in enumerate(providers)]
    return ProviderPool(
        Table(deployments), Breaker(100, 1), RetryConfig(max_retries=retries, backoff_base_s=0)
    )


GOOD = [START, EMPTY_TEXT, text_delta("ok"), {"type": "content_block_stop", "index": 0}, *finish("end_turn")]
EARLY_ERROR = [START, PING, OVERLOADED]


async def collect(opened: Any) -> list[Body]:
    return [opened.first] + [chunk async for chunk in opened.rest]


@pytest.mark.parametrize("early", [EARLY_ERROR, [START, PING, EMPTY_TEXT, PING, OVERLOADED]])
async def test_an_error_after_message_start_is_retried(early: list[Body]) -> None:
    failures: list[UpstreamError] = []
    opened = await pool(anthropic("a", early, GOOD), retries=2).stream(
        "m", {"messages": [{"role": "user", "content": "hi"}]}, lambda n, d, e, ms: failures.append(e)
    )
    chunks = await collect(opened)
    assert opened.served.attempts == 2 and [e.upstream_status for e in failures] == [529]
    assert deltas(chunks)[:2] == [{"role": "assistant", "content": ""}, {"content": "ok"}]


async def test_an_error_after_message_start_fails_over_once_retries_are_spent() -> None:
    failures: list[UpstreamError] = []
    first, second = anthropic("first", EARLY_ERROR, EARLY_ERROR), anthropic("second", GOOD)
    opened = await pool(first, second, retries=1).stream(
        "m", {"messages": [{"role": "user", "content": "hi"}]}, lambda n, d, e, ms: failures.append(e)
    )
    chunks = await collect(opened)
    assert opened.served.deployment.provider is second and len(failures) == 2
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}


# ── stop reasons ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "length"),
        ("max_tokens", "length"),
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, expected: str) -> None:
    assert finish_reason(stop_reason) == expected
    message = {
        "id": "m",
        "model": MODEL,
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
    }
    assert to_openai_response(message, 0)["choices"][0]["finish_reason"] == expected
    _, chunks = run_stream([START, EMPTY_TEXT, text_delta("x"), *finish(stop_reason)])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == expected
