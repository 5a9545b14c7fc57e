"""Durable memo of model-written summaries, keyed by content hash (SQLite, next to the ledger).

One row per (source text, model, target, prompt version). A summary that came out no shorter than its
source is stored too (as the source itself), so a prompt that cannot be shortened is not re-sent.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS compress_summaries (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    source_tokens INTEGER NOT NULL,
    summary TEXT NOT NULL,
    summary_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    source_tokens: int
    tokens: int
    model: str
    cost_usd: float

    @property
    def shorter(self) -> bool:
        return self.tokens < self.source_tokens


class SummaryStore:
    """SQLite table `compress_summaries`; every method is a short local transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(_SCHEMA)

    def get(self, key: str) -> Summary | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT summary, source_tokens, summary_tokens, model, cost_usd FROM compress_summaries "
                "WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else Summary(row[0], row[1], row[2], row[3], row[4])

    def put(self, key: str, summary: Summary) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO compress_summaries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, summary.model, summary.source_tokens, summary.text, summary.tokens, summary.cost_usd,
                 time.time()),
            )  # fmt: skip

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM compress_summaries").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
