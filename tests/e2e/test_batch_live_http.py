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
