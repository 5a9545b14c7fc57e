"""Virtual keys: minting and hashing, both stores, the cached directory, admin input validation."""

from __future__ import annotations

import asyncio
import time

import pytest

from thrifty.errors import InvalidRequest
from thrifty.tenancy.directory import KeyDirectory
from thrifty.tenancy.errors import StateUnavailable
from thrifty.tenancy.keys import PREFIX, Budgets, KeyHasher, RateLimits, looks_like_key, mint
from thrifty.tenancy.spec import create_fields, update_fields
from thrifty.tenancy.store_postgres import PostgresKeyStore
from thrifty.tenancy.store_sqlite import SQLiteKeyStore


def test_minted_keys_are_random_and_only_their_hash_is_kept():
    token, key = mint("team-a", name="ci")
    other, _ = mint("team-a")
    assert token.startswith(PREFIX) and len(token) > 40 and token != other
    assert looks_like_key(token) and not looks_like_key("sk-other")
    assert key.hint.startswith(PREFIX) and token[len(PREFIX) :] not in key.hint
    hasher = KeyHasher("pepper-1")
    assert hasher.hash(token) == KeyHasher("pepper-1").hash(token)
    assert hasher.hash(token) != KeyHasher("pepper-2").hash(token) != token
    assert token not in str(key.public())


def test_unusable_reasons():
    _, key = mint("t")
    assert key.unusable_reason() is None
    assert "revoked" in key.with_changes({"revoked": True}).unusable_reason()
    assert "expired" in key.with_changes({"expires_at": time.time() - 1}).unusable_reason()
    assert key.with_changes({"expires_at": time.time() + 60}).unusable_reason() is None


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteKeyStore(str(tmp_path / "keys.db"))
    return PostgresKeyStore(request.getfixturevalue("postgres_dsn"))


async def test_store_round_trip(store):
    await store.start()
    try:
        hasher = KeyHasher()
        token, key = mint(
            "team-a",
            name="n",
            models=("gpt-4o",),
            budgets=Budgets(daily_usd=1.5, total_usd=20),
            rate_limits=RateLimits(rpm=60),
            metadata={"owner": "ana"},
        )
        await store.insert(key, hasher.hash(token))
        _, other = mint("team-b")
        await store.insert(other, hasher.hash("x"))
        assert await store.by_hash(hasher.hash(token)) == key
        assert await store.by_id(key.id) == key
        assert await store.by_hash(hasher.hash(token + "x")) is None
        assert [k.id for k in await store.list("team-a")] == [key.id]
        assert await store.count() == 2
        changed = key.with_changes({"revoked": True, "budgets": Budgets(monthly_usd=3)})
        await store.save(changed)
        assert await store.by_hash(hasher.hash(token)) == changed
        assert [k.id for k in await store.list(include_revoked=False)] == [other.id]
    finally:
        await store.aclose()


class FlakyStore(SQLiteKeyStore):
    """A real SQLite store that can be switched to fail, as an unreachable database would."""

    down = False

    async def by_hash(self, key_hash):
        if self.down:
            raise OSError("connection refused")
        return await super().by_hash(key_hash)


async def test_directory_caches_serves_stale_while_down_then_fails_closed(tmp_path):
    store = FlakyStore(str(tmp_path / "k.db"))
    directory = KeyDirectory(store, KeyHasher(), ttl=0.05, stale_ttl=0.3)
    token, key = await directory.create("t")
    assert (await directory.by_token(token)).id == key.id
    store.down = True
    assert (await directory.by_token(token)).id == key.id  # cached
    await asyncio.sleep(0.1)
    assert (await directory.by_token(token)).id == key.id  # stale, store down
    await asyncio.sleep(0.3)
    with pytest.raises(StateUnavailable):
        await directory.by_token(token)
    store.down = False
    revoked = await directory.revoke(key.id)
    assert revoked.revoked and (await directory.by_token(token)).revoked
    await store.aclose()


def test_spec_validates_and_merges():
    tenant, fields = create_fields(
        {"tenant": "a", "budgets": {"daily_usd": 2}, "rate_limits": {"rpm": 5}, "expires_in_s": 60}
    )
    assert tenant == "a" and fields["budgets"] == Budgets(daily_usd=2)
    assert fields["rate_limits"] == RateLimits(rpm=5) and fields["expires_at"] > time.time()
    _, key = mint(tenant, **fields)
    changes = update_fields({"budgets": {"total_usd": 9}, "models": ["m"]}, key)
    assert changes["budgets"] == Budgets(daily_usd=2, total_usd=9) and changes["models"] == ("m",)
    assert update_fields({"models": None, "expires_at": None}, key) == {"models": None, "expires_at": None}
    with pytest.raises(InvalidRequest) as bad:
        create_fields({"budgets": {"daily_usd": -1}})
    assert bad.value.param == "budgets.daily_usd"
    with pytest.raises(InvalidRequest) as unknown:
        create_fields({"colour": "red"})
    assert "unknown field" in unknown.value.message and unknown.value.param == "colour"
    with pytest.raises(InvalidRequest):
        create_fields(["not", "an", "object"])
    with pytest.raises(InvalidRequest):
        update_fields({"tenant": None}, key)
