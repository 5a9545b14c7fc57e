from __future__ import annotations

import pytest

from thrifty.errors import InvalidRequest
from thrifty.request import validate_chat, validate_embeddings

OK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_valid_requests_pass_unchanged():
    body = {
        **OK,
        "temperature": 0,
        "n": 2,
        "stop": "x",
        "tools": [],
        "metadata": {"a": 1},
        "extra_field": 1,
        "messages": [
            {"role": "system", "content": "s"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "t"},
                    {"type": "image_url", "image_url": {"url": "data:x"}},
                ],
            },
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "content": "r", "tool_call_id": "1"},
        ],
    }
    assert validate_chat(body) is body


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"model": ""}, "model"),
        ({"model": 3}, "model"),
        ({"messages": [1]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages[0].content[0].text",
        ),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"top_p": 2}, "top_p"),
        ({"seed": 1.5}, "seed"),
        ({"logprobs": 1}, "logprobs"),
        ({"n": 0}, "n"),
        ({"stop": [1]}, "stop"),
        ({"stream_options": []}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"top_logprobs": 2, "logprobs": False}, "top_logprobs"),
        ({"tool_choice": "required"}, "tool_choice"),  # no tools to choose from (OpenAI refuses it too)
        ({"tool_choice": "none", "tools": []}, "tool_choice"),
        ({"tool_choice": 3, "tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
    ],
)
def test_invalid_requests_name_the_parameter(patch, param):
    with pytest.raises(InvalidRequest) as exc:
        validate_chat({**OK, **patch})
    assert exc.value.param == param and exc.value.status == 400


def test_embeddings_validation():
    assert validate_embeddings({"model": "e", "input": ["a", "b"]})
    for bad in (
        {"model": "e"},
        {"model": "e", "input": []},
        {"model": "e", "input": {"a": 1}},
        {"input": "x"},
    ):
        with pytest.raises(InvalidRequest):
            validate_embeddings(bad)
