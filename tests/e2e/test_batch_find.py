"""`BatchClient.find` against the fake provider's paginated batch list: how a restarted gateway finds
the upstream batch a crash left without a stored id."""

from __future__ import annotations

import asyncio

import pytest

from thrifty.config import ProviderConfig
from thrifty.providers.http import HttpClient
from thrifty.providers.registry import build_providers

pytestmark = pytest.mark.e2e


def _tagged(fake, tag: str | None, count: int) -> list[str]:
    """`count` batches straight into the fake's store, tagged like thrifty's `submit` tags them."""
    api = fake.batch_api
    ids = []
    with api._lock:
        for _ in range(count):
            batch_id = f"batch_find_{len(api.batches)}"
            metadata = {"thrifty_batch": tag} if tag else {"note": "someone else's"}
            api.batches[batch_id] = {"id": batch_id, "metadata": metadata, "_order": len(api.batches)}
            ids.append(batch_id)
    return ids


def _find(fake, provider_type: str, tag: str) -> str | None:
    base = fake.openai_base_url if provider_type == "openai" else fake.anthropic_base_url
    conf = ProviderConfig(type=provider_type, base_url=base, api_key="k")

    async def go() -> str | None:
        http = HttpClient()
        try:
            return await build_providers({"p": conf}, http)["p"].batch_api().find(tag)
        finally:
            await http.close()

    return asyncio.run(go())


def test_find_pages_back_through_the_newest_batches(fake):
    (old,) = _tagged(fake, "batch_wanted", 1)
    _tagged(fake, None, 250)  # newer batches: the wanted one is on the third page of 100
    assert _find(fake, "openai", "batch_wanted") == old
    assert _find(fake, "openai", "batch_never_submitted") is None


def test_find_gives_up_past_the_newest_thousand(fake):
    _tagged(fake, "batch_too_old", 1)
    _tagged(fake, None, 1000)  # ten full pages of newer batches
    assert _find(fake, "openai", "batch_too_old") is None


def test_anthropic_batches_cannot_be_found(fake):
    assert _find(fake, "anthropic", "anything") is None
