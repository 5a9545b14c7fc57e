"""The Ledger seam and the row shape every backend stores."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import orjson

from thrifty.types import Attempt

COLUMNS: tuple[str, ...] = (
    "ts", "request_id", "attempt", "tenant_id", "key_id", "kind", "requested_model", "served_model",
    "provider", "deployment", "route", "status", "http_status", "error", "input_tokens",
    "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "estimated",
    "cost_usd", "baseline_cost_usd", "saved_routing", "saved_cascade", "saved_cache_exact",
    "saved_cache_semantic", "saved_compression", "saved_prompt_cache", "saved_batching", "latency_ms",
    "stream", "final", "meta",
)  # fmt: skip
_META_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def meta_key(key: str) -> str:
    """`key` if it can name a top-level field of `meta` inside SQL text (it is never a parameter)."""
    if not _META_KEY.fullmatch(key):
        raise ValueError(f"not a meta field name: {key!r}")
    return key


def to_row(a: Attempt) -> tuple[Any, ...]:
    """Flatten an Attempt into the column order of COLUMNS."""
    u, s = a.usage, a.savings
    return (
        a.ts, a.request_id, a.attempt, a.tenant_id, a.key_id, a.kind, a.requested_model, a.served_model,
        a.provider, a.deployment, a.route, a.status, a.http_status, a.error, u.input_tokens,
        u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens, int(u.estimated),
        a.cost_usd, a.baseline_cost_usd, s.routing, s.cascade, s.cache_exact, s.cache_semantic,
        s.compression, s.prompt_cache, s.batching, round(a.latency_ms, 3), int(a.stream), int(a.final),
        orjson.dumps(a.meta).decode() if a.meta else None,
    )  # fmt: skip


class Ledger(ABC):
    """Append-only store of attempts. `record` never blocks; `close` flushes everything recorded."""

    @abstractmethod
    def record(self, attempt: Attempt) -> None: ...

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def flush(self, timeout: float = 5.0) -> None:
        """Block until everything recorded so far is durable."""

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows as dicts (column → value), oldest first unless newest_first; read through `query`."""
        where, params = [], []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        sql = "SELECT id, " + ", ".join(COLUMNS) + " FROM ledger"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only SELECT over the `ledger` table; rows as dicts (column alias → value).

        The SQL is portable (standard aggregates, `FLOOR`, `CASE`, `COALESCE`) with `?` placeholders;
        a backend translates the placeholder style of its driver. Used by the report."""
        raise NotImplementedError(f"{type(self).__name__} does not support report queries")

    def meta_text(self, key: str) -> str:
        """A SQL expression for `query`: the top-level field `key` of the row's `meta` JSON as text,
        NULL when `meta` is NULL or lacks it. Each backend writes it in its own dialect."""
        raise NotImplementedError(f"{type(self).__name__} does not read meta fields in SQL")

    def meta_number(self, key: str) -> str:
        """A SQL expression for `query`: the field `key` of `meta` as a double, NULL when absent."""
        raise NotImplementedError(f"{type(self).__name__} does not read meta fields in SQL")

    @property
    @abstractmethod
    def dropped(self) -> int:
        """Rows dropped because the write queue was full (should stay 0)."""

    @property
    def health(self) -> str:
        """Either "ok" or what is wrong with the ledger (shown in /readyz)."""
        return "ok" if self.dropped == 0 else f"dropped {self.dropped}"
