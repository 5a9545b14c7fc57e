"""What the SQL key stores share: one table layout, the statements built from each store's dialect
(table name, placeholder, float type) and the KeyStore operations written once over a single primitive,
`_execute`, that each store implements on its own driver."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from thrifty.tenancy.keys import COLUMNS, KeyStore, VirtualKey, from_row, to_row

Fetch = Literal["one", "all"] | None

_UPDATE_COLUMNS = tuple(c for c in COLUMNS if c not in ("id", "key_hash"))


@dataclass(frozen=True, slots=True)
class KeySQL:
    """The statements of one store, in its dialect."""

    placeholder: str
    schema: str
    select: str
    insert: str
    update: str
    count: str

    @classmethod
    def build(cls, *, table: str, placeholder: str, real: str) -> KeySQL:
        """`placeholder` is the driver's parameter marker; `real` the type of a float column."""
        values = ", ".join([placeholder] * len(COLUMNS))
        assignments = ", ".join(f"{c} = {placeholder}" for c in _UPDATE_COLUMNS)
        return cls(
            placeholder=placeholder,
            schema=f"""
CREATE TABLE IF NOT EXISTS {table} (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT,
    models TEXT,
    budgets TEXT,
    rate_limits TEXT,
    expires_at {real},
    metadata TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS {table}_tenant ON {table} (tenant);
""",
            select=f"SELECT {', '.join(COLUMNS)} FROM {table}",
            insert=f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({values})",
            update=f"UPDATE {table} SET {assignments} WHERE id = {placeholder}",
            count=f"SELECT count(*) AS n FROM {table}",
        )


class SQLKeyStore(KeyStore):
    """The KeyStore operations over `_execute`; a store adds its connection handling and `SQL`."""

    SQL: ClassVar[KeySQL]

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[Any] | None = None, fetch: Fetch = None) -> Any:
        """Run one statement; with `fetch`, its first row as a dict (or None) or all rows as dicts."""

    async def ping(self) -> None:
        await self._execute("SELECT 1", fetch="one")

    async def insert(self, key: VirtualKey, key_hash: str) -> None:
        await self._execute(self.SQL.insert, to_row(key, key_hash))

    async def _one(self, column: str, value: Any) -> VirtualKey | None:
        row = await self._execute(
            f"{self.SQL.select} WHERE {column} = {self.SQL.placeholder}", (value,), "one"
        )
        return from_row(row) if row is not None else None

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        return await self._one("key_hash", key_hash)

    async def by_id(self, key_id: str) -> VirtualKey | None:
        return await self._one("id", key_id)

    async def list(self, tenant: str | None = None, include_revoked: bool = True) -> list[VirtualKey]:
        clauses: list[str] = []
        params: list[Any] = []
        if tenant is not None:
            clauses.append(f"tenant = {self.SQL.placeholder}")
            params.append(tenant)
        if not include_revoked:
            clauses.append("revoked = 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._execute(f"{self.SQL.select}{where} ORDER BY created_at", params, "all")
        return [from_row(r) for r in rows]

    async def save(self, key: VirtualKey) -> None:
        values = dict(zip(COLUMNS, to_row(key, ""), strict=True))
        await self._execute(self.SQL.update, [values[c] for c in _UPDATE_COLUMNS] + [key.id])

    async def count(self) -> int:
        row = await self._execute(self.SQL.count, fetch="one")
        return int(row["n"])
