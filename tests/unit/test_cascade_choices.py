"""A cascade gates every choice of an `n > 1` answer (library mode, a provider stub whose cheap model
answers n=2 with one good and one truncated choice — the fake provider answers every choice alike)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from thrifty import config as config_mod
from thrifty.gateway import Gateway
from thrifty.providers.base import Provider, Reply
from thrifty.providers.http import HttpClient
from thrifty.types import Body, Usage

GOOD = '{"answer": 4}'


def choice(i: int, content: str, finish: str = "stop") -> Body:
    message = {"role": "assistant", "content": content}
    return {"index": i, "message": message, "finish_reason": finish, "logprobs": None}


class SecondChoiceCut(Provider):
    """`cheap-up` answers a good first choice and a truncated, non-JSON second one; any other model
    answers every choice well."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: list[str] = []

    async def chat(self, body: Body, model: str) -> Reply:
        self.asked.append(model)
        n = int(body.get("n") or 1)
        choices = [choice(0, GOOD)]
        choices += [
            choice(i, '{"answ', "length") if model == "cheap-up" else choice(i, GOOD) for i in range(1, n)
        ]
        answer = {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": choices}
        return Reply(body=answer, usage=Usage(input_tokens=10, output_tokens=5 * n))

    async def stream(self, body: Body, model: str) -> AsyncIterator[Body]:
        raise NotImplementedError
        yield {}


def config(tmp_path: Path) -> dict[str, Any]:
    stub = {"provider": "stub"}
    return {
        "providers": {"stub": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "unused"}},
        "models": {
            "gpt-4o-mini": {"deployments": [{**stub, "model": "cheap-up"}]},
            "gpt-4o": {"deployments": [{**stub, "model": "strong-up"}]},
        },
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5},
        "routing": {
            "virtual_models": {
                "v/c": {"cascade": {"tiers": ["gpt-4o-mini", "gpt-4o"], "gates": [{"type": "format"}]}}
            }
        },
    }


@pytest.mark.parametrize(("n", "served"), [(1, "gpt-4o-mini"), (2, "gpt-4o")])
async def test_a_tier_passes_only_when_every_choice_passes(tmp_path: Path, n: int, served: str) -> None:
    parsed = config_mod.parse(config(tmp_path), env={})
    provider = SecondChoiceCut("stub", parsed.providers["stub"], HttpClient())
    request = {
        "model": "v/c",
        "n": n,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "2+2 as JSON"}],
    }
    async with Gateway(parsed, providers={"stub": provider}) as gw:
        result = await gw.chat(request)
    assert result.served_model == served
    assert [c["finish_reason"] for c in result.body["choices"]] == ["stop"] * n
    assert provider.asked == (["cheap-up"] if n == 1 else ["cheap-up", "strong-up"])
