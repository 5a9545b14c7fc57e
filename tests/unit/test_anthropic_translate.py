"""Pure translation between OpenAI chat bodies and the Anthropic Messages API."""

from __future__ import annotations

import orjson
import pytest

from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.providers.anthropic_request import convert_tool_choice, to_anthropic_request
from thrifty.providers.anthropic_response import to_openai_response, usage_from_anthropic
from thrifty.types import Body, Usage

MODEL = "claude-sonnet-4-5"


def request(messages: list[Body], **fields: object) -> Body:
    return to_anthropic_request({"model": "x", "messages": messages, **fields}, MODEL)


# ── request mapping ──────────────────────────────────────────────────────────────────────────────


def test_minimal_request_gets_model_default_max_tokens_and_text_block() -> None:
    out = request([{"role": "user", "content": "hi"}])
    assert out == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert request([{"role": "user", "content": "hi"}], max_tokens=10)["max_tokens"] == 10
    out = request([{"role": "user", "content": "hi"}], max_tokens=10, max_completion_tokens=20)
    assert out["max_tokens"] == 20


def test_single_system_message_becomes_string() -> None:
    out = request([{"role": "system", "content": "be terse"}, {"role": "user", "content": "hi"}])
    assert out["system"] == "be terse"
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_system_and_developer_parts_keep_cache_control_as_block_list() -> None:
    cc = {"type": "ephemeral"}
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "long rules", "cache_control": cc}]},
        {"role": "developer", "content": "more"},
        {"role": "user", "content": "hi"},
    ]
    assert request(messages)["system"] == [
        {"type": "text", "text": "long rules", "cache_control": cc},
        {"type": "text", "text": "more"},
    ]


def test_system_with_image_is_refused() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with pytest.raises(InvalidRequest):
        request([{"role": "system", "content": [part]}, {"role": "user", "content": "hi"}])


def test_multi_part_user_content_with_images_and_cache_control() -> None:
    cc = {"type": "ephemeral"}
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
        {"type": "text", "text": "thanks", "cache_control": cc},
    ]
    blocks = request([{"role": "user", "content": content}])["messages"][0]["content"]
    assert blocks == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "thanks", "cache_control": cc},
    ]


def test_non_base64_data_url_is_refused() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
    with pytest.raises(InvalidRequest):
        request([{"role": "user", "content": [part]}])


def test_assistant_tool_calls_become_tool_use_and_tool_results_merge_into_one_user_turn() -> None:
    messages = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "wx", "arguments": '{"c":"Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "wx", "arguments": '{"c":"Rome"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "and so?"},
    ]
    turns = request(messages)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "wx", "input": {"c": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "wx", "input": {"c": "Rome"}},
    ]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
        {"type": "text", "text": "and so?"},
    ]


def test_assistant_text_kept_before_tool_use_and_empty_arguments_parse_to_object() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "now", "arguments": ""}}
    turns = request(
        [
            {"role": "user", "content": "time?"},
            {"role": "assistant", "content": "checking", "tool_calls": [call]},
        ]
    )["messages"]
    assert turns[1]["content"] == [
        {"type": "text", "text": "checking"},
        {"type": "tool_use", "id": "c", "name": "now", "input": {}},
    ]


def test_invalid_tool_arguments_are_refused() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    with pytest.raises(InvalidRequest):
        request([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}])


def test_consecutive_same_role_messages_merge() -> None:
    turns = request(
        [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "three"},
        ]
    )["messages"]
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]


def test_system_in_the_middle_is_hoisted_and_neighbours_merge() -> None:
    out = request(
        [
            {"role": "user", "content": "one"},
            {"role": "system", "content": "rule"},
            {"role": "user", "content": "two"},
        ]
    )
    assert out["system"] == "rule"
    assert len(out["messages"]) == 1
    assert [b["text"] for b in out["messages"][0]["content"]] == ["one", "two"]


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "wx",
                "description": "weather",
                "parameters": {"type": "object", "properties": {"c": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    out = request([{"role": "user", "content": "x"}], tools=tools, tool_choice="required")
    assert out["tools"] == [
        {
            "name": "wx",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "any"}


def test_tool_choice_variants() -> None:
    assert convert_tool_choice(None, None) is None
    assert convert_tool_choice("auto", None) == {"type": "auto"}
    assert convert_tool_choice("none", None) == {"type": "none"}
    assert convert_tool_choice("required", None) == {"type": "any"}
    named = {"type": "function", "function": {"name": "wx"}}
    assert convert_tool_choice(named, None) == {"type": "tool", "name": "wx"}
    assert convert_tool_choice(None, False) == {"type": "auto", "disable_parallel_tool_use": True}
    with pytest.raises(InvalidRequest):
        convert_tool_choice("sometimes", None)


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in request([{"role": "user", "content": "x"}], tool_choice="auto")


def test_non_function_tool_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        request([{"role": "user", "content": "x"}], tools=[{"type": "web_search"}])
    assert info.value.param == "tools"


@pytest.mark.parametrize(("stop", "expected"), [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_stop_becomes_stop_sequences(stop: str | list[str], expected: list[str]) -> None:
    assert request([{"role": "user", "content": "x"}], stop=stop)["stop_sequences"] == expected


def test_sampling_user_and_dropped_fields() -> None:
    out = request(
        [{"role": "user", "content": "x"}],
        temperature=1.5,
        top_p=0.9,
        user="u-1",
        response_format={"type": "json_object"},
        presence_penalty=0.5,
        seed=3,
        stream_options={"include_usage": True},
    )
    assert out["temperature"] == 1.0
    assert out["top_p"] == 0.9
    assert out["metadata"] == {"user_id": "u-1"}
    for dropped in (
        "response_format",
        "presence_penalty",
        "seed",
        "stream_options",
        "user",
        "stop_sequences",
    ):
        assert dropped not in out


def test_metadata_user_id_wins_over_user() -> None:
    out = request([{"role": "user", "content": "x"}], user="u-1", metadata={"user_id": "u-2", "k": "v"})
    assert out["metadata"] == {"user_id": "u-2"}


def test_n_above_one_is_refused_with_param() -> None:
    with pytest.raises(InvalidRequest) as info:
        request([{"role": "user", "content": "x"}], n=2)
    assert info.value.param == "n"
    assert "n" not in request([{"role": "user", "content": "x"}], n=1)


def test_stream_flag() -> None:
    out = to_anthropic_request({"messages": [{"role": "user", "content": "x"}]}, MODEL, stream=True)
    assert out["stream"] is True


# ── response mapping ─────────────────────────────────────────────────────────────────────────────


def test_text_response_with_cache_usage() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "output_tokens": 7,
        },
    }
    body = to_openai_response(data, created=1700000000)
    assert body["id"] == "msg_1"
    assert body["object"] == "chat.completion"
    assert body["created"] == 1700000000
    assert body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Hello world"
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 160,
        "completion_tokens": 7,
        "total_tokens": 167,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50},
    }
    assert usage_from_anthropic(data["usage"]) == Usage(
        input_tokens=160, cached_input_tokens=100, cache_write_tokens=50, output_tokens=7
    )
    assert Usage.from_openai(body["usage"]) == usage_from_anthropic(data["usage"])


def test_tool_use_response() -> None:
    data = {
        "id": "msg_2",
        "model": MODEL,
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "wx", "input": {"c": "Paris"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 3},
    }
    choice = to_openai_response(data, created=1)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1"
    assert call["type"] == "function"
    assert call["function"]["name"] == "wx"
    assert orjson.loads(call["function"]["arguments"]) == {"c": "Paris"}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    data = {"id": "m", "model": MODEL, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert to_openai_response(data, created=1)["choices"][0]["finish_reason"] == finish


def test_response_without_content_is_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        to_openai_response({"id": "m", "type": "message"}, created=1)


def test_one_hour_cache_writes_are_counted_apart():
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1500},
        "output_tokens": 5,
    }
    got = usage_from_anthropic(usage)
    assert got is not None and (got.cache_write_tokens, got.cache_write_long_tokens) == (2000, 1500)
    odd = usage_from_anthropic({**usage, "cache_creation": {"ephemeral_1h_input_tokens": "x"}})
    assert odd is not None and odd.cache_write_long_tokens == 0
