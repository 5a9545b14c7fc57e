"""`from thrifty import Gateway`: the same pipeline in-process, async and sync, no server."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import base_config
from thrifty import Gateway, SyncGateway
from thrifty.config import parse
from thrifty.errors import InvalidRequest, ModelNotFound, PermissionDenied
from thrifty.types import Tenant

pytestmark = pytest.mark.e2e


def config_for(fake, tmp_path):
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "lib.db")}
    return parse(data, {})


async def test_async_gateway_chat_stream_and_ledger(fake, tmp_path):
    async with Gateway(config_for(fake, tmp_path)) as gw:
        result = await gw.chat(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "lib"}]}, Tenant(id="team-a")
        )
        assert result.body["choices"][0]["message"]["content"] == "echo: lib"
        assert result.cost_usd > 0 and result.served_model == "gpt-4o"
        stream = await gw.chat_stream(
            {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "lib stream"}]}
        )
        text = "".join([c["choices"][0]["delta"].get("content") or "" async for c in stream if c["choices"]])
        assert text == "echo: lib stream"
        with pytest.raises(ModelNotFound):
            await gw.chat({"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        with pytest.raises(InvalidRequest):
            await gw.chat({"model": "gpt-4o", "messages": []})
        with pytest.raises(PermissionDenied):
            await gw.chat(
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
                Tenant(id="t", allowed_models=("gpt-4o-mini",)),
            )
    # closing flushed the ledger
    rows = (
        sqlite3.connect(tmp_path / "lib.db")
        .execute("SELECT tenant_id, served_model, status, stream FROM ledger ORDER BY id")
        .fetchall()
    )
    assert rows == [("team-a", "gpt-4o", "ok", 0), ("default", "claude-sonnet-4-5", "ok", 1)]


def test_sync_gateway(fake, tmp_path):
    with SyncGateway(config_for(fake, tmp_path)) as gw:
        result = gw.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "sync"}]})
        assert result.body["choices"][0]["message"]["content"] == "echo: sync"
        chunks = list(gw.chat_stream({"model": "gpt-4o", "messages": [{"role": "user", "content": "s"}]}))
        assert (
            "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            == "echo: s"
        )
        emb = gw.embeddings({"model": "text-embedding-3-small", "input": "vector please"})
        assert len(emb.body["data"]) == 1
    count = sqlite3.connect(tmp_path / "lib.db").execute("SELECT count(*) FROM ledger").fetchone()[0]
    assert count == 3
