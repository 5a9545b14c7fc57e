"""`response_format` (json_schema / json_object) emulated on Anthropic with one forced tool."""

from __future__ import annotations

import orjson
import pytest

from thrifty.errors import InvalidRequest
from thrifty.providers.anthropic_request import RESPONSE_FORMAT_TOOL, to_anthropic_request
from thrifty.providers.anthropic_response import StreamTranslator, to_openai_response
from thrifty.types import Body

MODEL = "claude-sonnet-4-5"
SCHEMA: Body = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
    "additionalProperties": False,
}
FORCED = {"type": "tool", "name": RESPONSE_FORMAT_TOOL, "disable_parallel_tool_use": True}
USER = [{"role": "user", "content": "Biggest city in Italy?"}]


def request(**fields: object) -> Body:
    return to_anthropic_request({"model": "x", "messages": USER, **fields}, MODEL)


def json_schema(**spec: object) -> Body:
    return {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA, **spec}}


# ── request ──────────────────────────────────────────────────────────────────────────────────────


def test_json_schema_becomes_one_forced_tool_with_the_schema_as_input_schema() -> None:
    out = request(response_format=json_schema(strict=True, description="A city."))
    (tool,) = out["tools"]
    assert tool["name"] == RESPONSE_FORMAT_TOOL
    assert tool["input_schema"] == SCHEMA
    assert "City" in tool["description"] and "A city." in tool["description"]
    assert out["tool_choice"] == FORCED
    assert "response_format" not in out and "strict" not in tool
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": USER[0]["content"]}]}]


def test_json_object_becomes_a_tool_taking_any_object() -> None:
    out = request(response_format={"type": "json_object"})
    (tool,) = out["tools"]
    assert tool["name"] == RESPONSE_FORMAT_TOOL
    assert tool["input_schema"] == {"type": "object"}
    assert out["tool_choice"] == FORCED


def test_json_schema_without_schema_or_type_is_an_object() -> None:
    bare = {"type": "json_schema", "json_schema": {"name": "Any"}}
    assert request(response_format=bare)["tools"][0]["input_schema"] == {"type": "object"}
    no_type = {"type": "json_schema", "json_schema": {"name": "P", "schema": {"properties": {}}}}
    assert request(response_format=no_type)["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {},
    }


def test_text_response_format_adds_nothing() -> None:
    out = request(response_format={"type": "text"})
    assert "tools" not in out and "tool_choice" not in out


def test_response_format_with_client_tools_is_refused() -> None:
    tools = [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}]
    with pytest.raises(InvalidRequest) as info:
        request(response_format=json_schema(), tools=tools, tool_choice="auto")
    assert info.value.param == "response_format"
    assert "tools" in info.value.message


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "xml"},
        {},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "L", "schema": {"type": "array"}}},
        {"type": "json_schema", "json_schema": {"name": "L", "schema": "object"}},
    ],
)
def test_unusable_response_format_is_refused(response_format: Body) -> None:
    with pytest.raises(InvalidRequest) as info:
        request(response_format=response_format)
    assert info.value.param == "response_format"


def test_client_tool_may_not_take_the_reserved_name() -> None:
    tools = [{"type": "function", "function": {"name": RESPONSE_FORMAT_TOOL}}]
    with pytest.raises(InvalidRequest) as info:
        request(tools=tools)
    assert info.value.param == "tools"


# ── response ─────────────────────────────────────────────────────────────────────────────────────

ANSWER = {"name": "Rome", "population": 2800000}
USAGE = {"input_tokens": 50, "cache_read_input_tokens": 10, "output_tokens": 20}


def message(stop_reason: str = "tool_use", *blocks: Body) -> Body:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": RESPONSE_FORMAT_TOOL, "input": ANSWER}
    return {
        "id": "msg_1",
        "model": MODEL,
        "content": [*blocks, tool_use],
        "stop_reason": stop_reason,
        "usage": USAGE,
    }


def test_response_tool_use_becomes_json_content_and_stop() -> None:
    out = to_openai_response(message(), created=7)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {
        "role": "assistant",
        "content": orjson.dumps(ANSWER).decode(),
        "refusal": None,
    }
    assert orjson.loads(choice["message"]["content"]) == ANSWER
    assert out["usage"]["prompt_tokens"] == 60 and out["usage"]["completion_tokens"] == 20
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 10


def test_response_text_beside_the_answer_is_dropped_and_truncation_stays_length() -> None:
    out = to_openai_response(message("max_tokens", {"type": "text", "text": "Sure:"}), created=7)
    assert out["choices"][0]["message"]["content"] == orjson.dumps(ANSWER).decode()
    assert out["choices"][0]["finish_reason"] == "length"


def test_ordinary_tool_use_is_still_a_tool_call() -> None:
    data = message()
    data["content"][0]["name"] = "wx"
    choice = to_openai_response(data, created=7)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "wx"


# ── stream ───────────────────────────────────────────────────────────────────────────────────────


def stream_events(partials: list[str], stop_reason: str = "tool_use") -> list[Body]:
    head = {"type": "tool_use", "id": "toolu_1", "name": RESPONSE_FORMAT_TOOL, "input": {}}
    start = {"type": "message_start", "message": {"id": "msg_s", "model": MODEL, "usage": USAGE}}
    return [
        start,
        {"type": "content_block_start", "index": 0, "content_block": head},
        {"type": "ping"},
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            for p in partials
        ),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 31}},
        {"type": "message_stop"},
    ]


def run_stream(events: list[Body]) -> list[Body]:
    translator = StreamTranslator(created=42)
    chunks = [chunk for event in events for chunk in translator.feed(event["type"], event)]
    translator.finish()
    return chunks


def test_stream_input_json_deltas_become_content_deltas_and_stop() -> None:
    chunks = run_stream(stream_events(["", '{"name": "Ro', 'me", "population"', ": 2800000}"]))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    assert [d["content"] for d in deltas if d.get("content")] == [
        '{"name": "Ro',
        'me", "population"',
        ": 2800000}",
    ]
    assert orjson.loads("".join(d.get("content") or "" for d in deltas)) == ANSWER
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 60 and chunks[-1]["usage"]["completion_tokens"] == 31


def test_stream_truncated_answer_finishes_with_length() -> None:
    chunks = run_stream(stream_events(['{"name": '], stop_reason="max_tokens"))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_answer_with_empty_input_is_an_empty_object() -> None:
    chunks = run_stream(stream_events([""]))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "{}"
