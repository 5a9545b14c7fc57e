"""The official openai SDK against `thrifty serve` in front of the fake provider."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.conftest import PROVIDER_SECRET, ledger_rows
from thrifty.pricing.catalog import Catalog

pytestmark = pytest.mark.e2e
CATALOG = Catalog.bundled()


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0)


def expected_cost(model: str, prompt: int, completion: int, cached: int = 0) -> float:
    p = CATALOG.get(model)
    return ((prompt - cached) * p.input + cached * p.cached_input_rate + completion * p.output) / 1e6


def test_sync_chat_answer_headers_cost_and_ledger(gateway, fake):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "What is thrifty?"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: What is thrifty?"
    assert completion.model == "gpt-4o"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    cost = float(raw.headers["x-thrifty-cost-usd"])
    assert cost == pytest.approx(
        expected_cost("gpt-4o", usage.prompt_tokens, usage.completion_tokens), rel=1e-6
    )
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    request_id = raw.headers["x-request-id"]
    assert request_id.startswith("req_")
    # the provider got our key, never the client's
    sent = fake.requests("/v1/chat/completions")[-1]
    assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_SECRET}"
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=request_id)
    assert row["status"] == "ok" and row["final"] == 1
    assert row["input_tokens"] == usage.prompt_tokens and row["output_tokens"] == usage.completion_tokens
    assert row["cost_usd"] == pytest.approx(cost, rel=1e-6)
    assert row["baseline_cost_usd"] == pytest.approx(cost, rel=1e-6)  # baseline = requested model
    assert row["provider"] == "fakeai" and row["estimated"] == 0
    assert usage.model_extra["cost"] == pytest.approx(cost, rel=1e-6)  # also in the body, for SDK users


def test_async_client_concurrent(gateway):
    async def run() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
        answers = await asyncio.gather(
            *[
                aclient.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                )
                for i in range(20)
            ]
        )
        await aclient.close()
        return [a.choices[0].message.content for a in answers]

    assert asyncio.run(run()) == [f"echo: q{i}" for i in range(20)]


def test_streaming_with_usage(gateway):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me please"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["stream"] == 1 and row["output_tokens"] == chunks[-1].usage.completion_tokens
    # the stream cannot carry a cost header: the usage chunk has the booked cost instead
    assert row["cost_usd"] > 0 and chunks[-1].usage.model_extra["cost"] == pytest.approx(row["cost_usd"])


def test_streaming_without_usage_option_sends_no_usage_chunk(gateway):
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # but thrifty asked the provider for usage and booked it exactly
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["estimated"] == 0 and row["output_tokens"] > 0


def test_tools_pass_through(gateway, fake):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = client(gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "please call tool"}],
        tools=tools,
        tool_choice="auto",
        seed=7,
        stop=["END"],
        response_format={"type": "text"},
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"
    sent = fake.requests("/v1/chat/completions")[-1]["body"]
    assert sent["tools"] == tools and sent["seed"] == 7 and sent["stop"] == ["END"]


def test_anthropic_provider_behind_openai_api(gateway, fake):
    completion = client(gateway).chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello claude"}],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "echo: hello claude"
    sent = fake.requests("/v1/messages")[-1]
    assert sent["body"]["system"] in ("be brief", [{"type": "text", "text": "be brief"}])
    assert sent["headers"]["x-api-key"] == PROVIDER_SECRET
    chunks = list(
        client(gateway).chat.completions.create(
            model="claude-sonnet-4-5",
            messages=[{"role": "user", "content": "stream claude"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream claude"
    assert chunks[-1].usage.prompt_tokens > 0


def test_anthropic_cached_tokens_priced_at_cache_rates(gateway, fake):
    fake.script({"cached_tokens": 40, "usage": {"input_tokens": 100, "output_tokens": 10}})
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "cached?"}]
    )
    usage = raw.parse().usage
    assert usage.prompt_tokens_details.cached_tokens == 40
    cost = float(raw.headers["x-thrifty-cost-usd"])
    p = CATALOG.get("claude-sonnet-4-5")
    uncached = usage.prompt_tokens - 40
    assert cost == pytest.approx((uncached * p.input + 40 * p.cached_input + 10 * p.output) / 1e6, rel=1e-6)
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["cached_input_tokens"] == 40 and row["saved_prompt_cache"] > 0


def test_missing_usage_is_counted_locally_and_marked(gateway, fake):
    fake.script({"omit_usage": True})
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "count me locally"}]
    )
    assert raw.parse().usage.completion_tokens > 0
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["estimated"] == 1 and row["cost_usd"] > 0


def test_embeddings_priced(gateway):
    raw = client(gateway).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["a b c", "d e"]
    )
    result = raw.parse()
    assert len(result.data) == 2
    assert float(raw.headers["x-thrifty-cost-usd"]) == pytest.approx(
        result.usage.prompt_tokens * 0.02 / 1e6, rel=1e-6
    )
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["kind"] == "embeddings" and row["cost_usd"] > 0


def test_models_endpoint(gateway):
    ids = {m.id for m in client(gateway).models.list()}
    assert {"gpt-4o", "claude-sonnet-4-5", "resilient"} <= ids
    assert client(gateway).models.retrieve("resilient").id == "resilient"
    with pytest.raises(openai.NotFoundError) as missing:
        client(gateway).models.retrieve("no-such-model")
    assert missing.value.body["code"] == "model_not_found"


def test_stream_without_provider_usage_still_gives_the_client_usage(gateway, fake):
    fake.script({"omit_usage": True})
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "count my stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: count my stream"
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["estimated"] == 1 and row["output_tokens"] == chunks[-1].usage.completion_tokens


def test_embeddings_without_provider_usage_tell_the_client_the_local_count(gateway, fake):
    fake.script({"omit_usage": True})
    raw = client(gateway).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["a b c", "d e"]
    )
    usage = raw.parse().usage
    assert usage.prompt_tokens == usage.total_tokens == 5  # "a b c" + "d e" in cl100k
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["estimated"] == 1 and row["input_tokens"] == 5
    assert float(raw.headers["x-thrifty-cost-usd"]) == pytest.approx(5 * 0.02 / 1e6, rel=1e-6)


def test_a_streamed_answer_names_the_model_asked_for_not_the_deployment(gateway):
    """`resilient` is served by deployments named `primary-up` / `backup-up` upstream."""
    plain = client(gateway).chat.completions.create(
        model="resilient", messages=[{"role": "user", "content": "hi"}]
    )
    chunks = list(
        client(gateway).chat.completions.create(
            model="resilient", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert plain.model == "resilient" and {c.model for c in chunks} == {"resilient"}
