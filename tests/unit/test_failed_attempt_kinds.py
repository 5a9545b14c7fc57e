"""A failed attempt is booked as the kind of call it was (chat, embeddings), so per-kind error figures
count only their own traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config, ledger_rows
from thrifty import config as config_mod
from thrifty.errors import UpstreamError
from thrifty.gateway import Gateway


async def test_failed_embedding_attempts_are_embedding_rows(fake: Any, tmp_path: Path) -> None:
    cfg = base_config(fake)
    cfg["ledger"] = {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5}
    fake.script({"status": 500}, {"status": 500}, {"status": 500}, model="text-embedding-3-small")
    async with Gateway(config_mod.parse(cfg, env={})) as gw:
        with pytest.raises(UpstreamError):
            await gw.embeddings({"model": "text-embedding-3-small", "input": "hello"})
        await gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    rows = ledger_rows(tmp_path / "ledger.db")
    assert [(r["kind"], r["status"]) for r in rows] == [("embeddings", "error")] * 3 + [("chat", "ok")]
