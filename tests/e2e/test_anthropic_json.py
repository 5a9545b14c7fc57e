"""Structured outputs (`response_format`) on an Anthropic model, through the openai SDK's parse helpers."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel

from tests.conftest import ledger_rows
from thrifty.pricing.catalog import Catalog
from thrifty.providers.anthropic_request import RESPONSE_FORMAT_TOOL

pytestmark = pytest.mark.e2e
MODEL = "claude-sonnet-4-5"
PRICE = Catalog.bundled().get(MODEL)


class City(BaseModel):
    name: str
    population: int
    landmarks: list[str]


ROME = City(name="Rome", population=2_800_000, landmarks=["Colosseum", "Pantheon"])
MESSAGES = [{"role": "user", "content": "Describe the capital of Italy."}]


def client(gw, request_ids: list[str]) -> openai.OpenAI:
    def keep_id(response: httpx.Response) -> None:
        request_ids.append(response.headers.get("x-request-id", ""))

    http = httpx.Client(event_hooks={"response": [keep_id]})
    return openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0, http_client=http)


def answer_with(city: City) -> dict:
    """The fake answers with a tool_use block of the response-format tool."""
    return {"tool_calls": [{"function": {"name": RESPONSE_FORMAT_TOOL, "arguments": city.model_dump()}}]}


def assert_forced_tool_sent(fake) -> None:
    sent = fake.requests("/v1/messages")[-1]["body"]
    assert [tool["name"] for tool in sent["tools"]] == [RESPONSE_FORMAT_TOOL]
    assert sent["tools"][0]["input_schema"] == to_strict_json_schema(City)
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": RESPONSE_FORMAT_TOOL,
        "disable_parallel_tool_use": True,
    }


def assert_booked(gateway, request_id: str, usage, *, stream: bool) -> None:
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=request_id)
    assert row["status"] == "ok" and row["stream"] == int(stream) and row["estimated"] == 0
    assert row["input_tokens"] == usage.prompt_tokens and row["output_tokens"] == usage.completion_tokens
    cost = (usage.prompt_tokens * PRICE.input + usage.completion_tokens * PRICE.output) / 1e6
    assert row["cost_usd"] == pytest.approx(cost, rel=1e-6)


def test_parse_returns_the_pydantic_object(gateway, fake):
    fake.script(answer_with(ROME))
    ids: list[str] = []
    completion = client(gateway, ids).beta.chat.completions.parse(
        model=MODEL, messages=MESSAGES, response_format=City
    )
    choice = completion.choices[0]
    assert choice.message.parsed == ROME
    assert City.model_validate_json(choice.message.content) == ROME
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"
    assert_forced_tool_sent(fake)
    assert completion.usage.completion_tokens > 0
    assert_booked(gateway, ids[-1], completion.usage, stream=False)


def test_streamed_parse_returns_the_pydantic_object(gateway, fake):
    fake.script(answer_with(ROME))
    ids: list[str] = []
    with client(gateway, ids).beta.chat.completions.stream(
        model=MODEL, messages=MESSAGES, response_format=City, stream_options={"include_usage": True}
    ) as stream:
        events = list(stream)
        completion = stream.get_final_completion()
    assert any(event.type == "content.delta" for event in events)
    assert not any(event.type.startswith("tool_calls") for event in events)
    choice = completion.choices[0]
    assert choice.message.parsed == ROME
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"
    assert_forced_tool_sent(fake)
    assert fake.requests("/v1/messages")[-1]["body"]["stream"] is True
    assert_booked(gateway, ids[-1], completion.usage, stream=True)


def test_response_format_with_tools_is_a_400(gateway, fake):
    wx = {"name": "wx", "parameters": {"type": "object", "properties": {}}, "strict": True}
    tools = [{"type": "function", "function": wx}]
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway, []).beta.chat.completions.parse(
            model=MODEL, messages=MESSAGES, response_format=City, tools=tools
        )
    assert info.value.body["param"] == "response_format"
    assert fake.requests("/v1/messages") == []
