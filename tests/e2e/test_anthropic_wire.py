"""An Anthropic model through `thrifty serve` and the openai SDK: an answer without usage is counted
locally (never booked as free), and parameters the Messages API cannot honour are refused or, for
logprobs, documented as dropped."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import ledger_rows
from thrifty.pricing.catalog import Catalog

pytestmark = pytest.mark.e2e
MODEL = "claude-sonnet-4-5"
PRICE = Catalog.bundled().get(MODEL)
FUNCTION = {"name": "wx", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0)


def assert_estimated(gateway, request_id: str, prompt: int, completion: int) -> None:
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=request_id)
    assert row["status"] == "ok" and row["estimated"] == 1
    assert row["input_tokens"] == prompt > 0 and row["output_tokens"] == completion > 0
    assert row["cost_usd"] == pytest.approx(
        (prompt * PRICE.input + completion * PRICE.output) / 1e6, rel=1e-6
    )


def test_answer_without_usage_is_counted_locally(gateway, fake):
    fake.script({"omit_usage": True})
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "count me locally"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: count me locally"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert float(raw.headers["x-thrifty-cost-usd"]) > 0
    assert_estimated(gateway, raw.headers["x-request-id"], usage.prompt_tokens, usage.completion_tokens)


def test_stream_without_usage_is_counted_locally(gateway, fake):
    fake.script({"omit_usage": True})
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "count my stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: count my stream"
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert [c for c in chunks if c.usage is not None] == [chunks[-1]]  # one usage chunk, the estimate
    assert_estimated(gateway, raw.headers["x-request-id"], usage.prompt_tokens, usage.completion_tokens)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"functions": [FUNCTION], "function_call": {"name": "wx"}}, "functions"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
)
def test_parameters_that_would_change_the_answer_are_a_400(gateway, fake, fields, param):
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "weather in Paris?"}], **fields
        )
    assert info.value.body["param"] == param
    assert param in info.value.body["message"]
    assert fake.requests("/v1/messages") == []


def test_logprobs_are_dropped_and_answered_null(gateway, fake):
    completion = client(gateway).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "sure?"}], logprobs=True, top_logprobs=2
    )
    assert completion.choices[0].message.content == "echo: sure?"
    assert completion.choices[0].logprobs is None
    sent = fake.requests("/v1/messages")[-1]["body"]
    assert "logprobs" not in sent and "top_logprobs" not in sent
