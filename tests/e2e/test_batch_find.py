"""`BatchClient.find` against the fake provider's paginated batch list: how a restarted gateway finds
the upstream batch a crash left without a stored id."""

from __future__ import annotations

import asyncio

import pytest

from thrifty.config import ProviderConfig
from thrifty.providers.http import HttpClient
from thrifty.providers.registry import build_providers

pytestmark = pytest.mark.e2e


NOW = 1_800_000_000  # the job's creation time in these tests (Unix seconds)


@pytest.fixture(autouse=True)
def _empty_batch_list(fake):
    """Each test counts list pages: start from no batches (the fake provider outlives a test)."""
    with fake.batch_api._lock:
        fake.batch_api.batches.clear()


def _tagged(fake, tag: str | None, count: int, created_at: int = NOW) -> list[str]:
    """`count` batches straight into the fake's store, tagged like thrifty's `submit` tags them."""
    api = fake.batch_api
    ids = []
    with api._lock:
        for _ in range(count):
            batch_id = f"batch_find_{len(api.batches)}"
            metadata = {"thrifty_batch": tag} if tag else {"note": "someone else's"}
            order = len(api.batches)
            api.batches[batch_id] = {
                "id": batch_id,
                "metadata": metadata,
                "_order": order,
                "created_at": created_at,
            }
            ids.append(batch_id)
    return ids


def _find(fake, provider_type: str, tag: str, since: float = NOW) -> str | None:
    base = fake.openai_base_url if provider_type == "openai" else fake.anthropic_base_url
    conf = ProviderConfig(type=provider_type, base_url=base, api_key="k")

    async def go() -> str | None:
        http = HttpClient()
        try:
            return await build_providers({"p": conf}, http)["p"].batch_api().find(tag, since)
        finally:
            await http.close()

    return asyncio.run(go())


def _list_calls(fake) -> int:
    return len(fake.requests("/v1/batches"))


def test_find_pages_back_through_the_newest_batches(fake):
    (old,) = _tagged(fake, "batch_wanted", 1)
    _tagged(fake, None, 250)  # newer batches: the wanted one is on the third page of 100
    assert _find(fake, "openai", "batch_wanted") == old
    assert _find(fake, "openai", "batch_never_submitted") is None


def test_find_goes_as_far_back_as_the_job_and_no_further(fake):
    _tagged(fake, "batch_wanted", 1, created_at=NOW - 7 * 86400)  # a week before the job: not its batch
    (wanted,) = _tagged(fake, "batch_wanted", 1)
    _tagged(fake, None, 1400)  # fifteen pages of batches created since the job
    assert _find(fake, "openai", "batch_wanted") == wanted
    calls = _list_calls(fake)
    assert calls == 15
    # no match: the search stops at the first page that reaches before the job, not at the bound
    _tagged(fake, None, 300, created_at=NOW - 2 * 86400)  # older batches sit behind the newer ones...
    api = fake.batch_api
    with api._lock:  # ...so put them behind: the list is newest first
        for batch in api.batches.values():
            if batch["created_at"] < NOW:
                batch["_order"] -= 10_000
    assert _find(fake, "openai", "batch_never_submitted") is None
    # 1,401 batches since the job fill 14 pages and start the 15th, whose last batch is older: stop there
    assert _list_calls(fake) - calls == 15


def test_find_ignores_a_tagged_batch_older_than_the_job(fake):
    _tagged(fake, "batch_reused_tag", 1, created_at=NOW - 7 * 86400)
    _tagged(fake, None, 5)
    assert _find(fake, "openai", "batch_reused_tag") is None
    assert _list_calls(fake) == 1


def test_anthropic_batches_cannot_be_found(fake):
    assert _find(fake, "anthropic", "anything") is None
