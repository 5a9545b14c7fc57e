"""Live micro-batching through `thrifty serve`: concurrent openai SDK clients, one upstream call."""

from __future__ import annotations

import asyncio

import openai
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty.batching.prompt import parse_items

pytestmark = pytest.mark.e2e
SYSTEM = (
    "Label the topic of the text as sports, politics, tech or other. One word. " + "Be consistent. " * 120
)


def test_concurrent_sdk_clients_share_one_upstream_call(gateway_factory, fake):
    data = base_config(fake)
    data["batching"] = {"live": {"enabled": True, "models": ["gpt-4o-mini"], "window_ms": 150}}
    gw = gateway_factory(data)

    async def run() -> list:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        try:
            return await asyncio.gather(
                *(
                    client.chat.completions.with_raw_response.create(
                        model="gpt-4o-mini",
                        messages=[
                            {"role": "system", "content": SYSTEM},
                            {"role": "user", "content": f"text {i}"},
                        ],
                    )
                    for i in range(4)
                )
            )
        finally:
            await client.close()

    raws = asyncio.run(run())
    answers = [r.parse().choices[0].message.content for r in raws]
    assert answers == [f"echo: text {i}" for i in range(4)]
    assert {r.headers["x-thrifty-batch-size"] for r in raws} == {"4"}
    (sent,) = fake.requests("/v1/chat/completions")
    assert sorted(parse_items(sent["body"]["messages"][-1]["content"])) == [f"text {i}" for i in range(4)]
    for raw in raws:
        (row,) = ledger_rows(gw.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
        assert row["saved_batching"] > 0
        assert row["cost_usd"] == pytest.approx(float(raw.headers["x-thrifty-cost-usd"]), rel=1e-6)


def test_capped_sdk_clients_get_their_cap_and_the_uncapped_still_batch(gateway_factory, fake):
    """QA's report: 4 concurrent requests with max_tokens=5 were sent as one call with max_tokens=84 and
    each client got its full answer (finish_reason "stop", 18-19 tokens, billed). A client's cap is
    applied by the provider on its own call; uncapped requests arriving alongside still share one."""
    data = base_config(fake)
    data["batching"] = {"live": {"enabled": True, "window_ms": 100}}
    gw = gateway_factory(data)

    def create(client: openai.AsyncOpenAI, text: str, **extra):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        return client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, **extra
        )

    async def run() -> list:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        try:
            capped = [
                create(client, f"one two three four five six seven {i}", max_tokens=5) for i in range(4)
            ]
            free = [create(client, f"text {i}") for i in range(4)]
            return await asyncio.gather(*capped, *free)
        finally:
            await client.close()

    raws = asyncio.run(run())
    for raw in raws[:4]:
        completion = raw.parse()
        assert completion.choices[0].message.content == "echo: one two three"
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage.completion_tokens <= 5
        assert "x-thrifty-batch-size" not in raw.headers
        (row,) = ledger_rows(gw.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
        assert row["output_tokens"] <= 5  # booked as billed: what the provider really generated
        assert row["saved_batching"] == 0
    assert [r.parse().choices[0].message.content for r in raws[4:]] == [f"echo: text {i}" for i in range(4)]
    assert {r.headers["x-thrifty-batch-size"] for r in raws[4:]} == {"4"}
    sent = [s["body"] for s in fake.requests("/v1/chat/completions")]
    batched = [b for b in sent if parse_items(b["messages"][-1]["content"])]
    assert len(sent) == 5 and len(batched) == 1
    assert sorted(parse_items(batched[0]["messages"][-1]["content"])) == [f"text {i}" for i in range(4)]
    assert "max_tokens" not in batched[0]
    assert sorted(b.get("max_tokens") for b in sent if b is not batched[0]) == [5] * 4
