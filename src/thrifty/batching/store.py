"""Batch jobs and their files in SQLite (next to the ledger by default), in the OpenAI shapes.

A file row holds its bytes; a batch row holds the OpenAI Batch object's fields plus what thrifty
needs to run it (`upstream`: the provider batch it was forwarded to, `owner`: the process running it,
`input`: its own copy of the input file's bytes, taken when that file is deleted before the batch ends).
Everything is scoped by tenant: a tenant never sees another tenant's files or batches.

A batch's status moves under the store's lock: a cancel accepted by the API (`cancel`) is never
overwritten by the runner's progress (`update`, `save_progress`), and a batch that reached `finalizing`
(`finalize`: every line answered) can no longer be cancelled.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_files (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, purpose TEXT NOT NULL, filename TEXT NOT NULL,
    bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, key_id TEXT, status TEXT NOT NULL, owner TEXT,
    created_at INTEGER NOT NULL, body TEXT NOT NULL, upstream TEXT
);
CREATE INDEX IF NOT EXISTS batches_tenant ON batches (tenant_id, created_at);
CREATE TABLE IF NOT EXISTS batch_lines (
    batch_id TEXT NOT NULL, line INTEGER NOT NULL, ok INTEGER NOT NULL, output BLOB NOT NULL,
    PRIMARY KEY (batch_id, line)
);
"""
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
FINAL = ("completed", "failed", "expired", "cancelled")
CANCELLABLE = ("validating", "in_progress")
_INPUT_OF = "json_extract(body, '$.input_file_id')"
T = TypeVar("T")


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": row["created_at"],
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": "processed",
        "status_details": None,
    }


class BatchStore:
    """Thread-safe access to one SQLite file of batch files and jobs."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)
        columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(batches)")}
        if "input" not in columns:  # stores made before batches kept their own input copy
            self._conn.execute("ALTER TABLE batches ADD COLUMN input BLOB")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params)]

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one transaction, under the lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                out = work(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return out

    @staticmethod
    def _body(conn: sqlite3.Connection, batch_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        sql, params = "SELECT body FROM batches WHERE id = ?", (batch_id,)
        if tenant is not None:
            sql, params = sql + " AND tenant_id = ?", (batch_id, tenant)
        row = conn.execute(sql, params).fetchone()
        return orjson.loads(row["body"]) if row else None

    @staticmethod
    def _write(conn: sqlite3.Connection, body: dict[str, Any]) -> None:
        conn.execute(
            "UPDATE batches SET status = ?, body = ? WHERE id = ?",
            (body["status"], orjson.dumps(body).decode(), body["id"]),
        )

    # ------------------------------------------------------------------ files

    def add_file(self, tenant: str, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        row = {
            "id": new_id("file-"),
            "tenant_id": tenant,
            "purpose": purpose,
            "filename": filename,
            "bytes": len(data),
            "created_at": int(time.time()),
            "data": data,
        }
        self._run(
            "INSERT INTO batch_files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row["id"], tenant, purpose, filename, len(data), row["created_at"], data),
        )
        return file_object(row)

    def file(self, tenant: str, file_id: str) -> dict[str, Any] | None:
        rows = self._all(
            "SELECT id, purpose, filename, bytes, created_at FROM batch_files WHERE id = ? AND tenant_id = ?",
            (file_id, tenant),
        )
        return file_object(rows[0]) if rows else None

    def files(self, tenant: str, purpose: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, purpose, filename, bytes, created_at FROM batch_files WHERE tenant_id = ?"
        params: tuple[Any, ...] = (tenant,)
        if purpose:
            sql, params = sql + " AND purpose = ?", (tenant, purpose)
        return [file_object(r) for r in self._all(sql + " ORDER BY created_at DESC", params)]

    def content(self, tenant: str, file_id: str) -> bytes | None:
        rows = self._all("SELECT data FROM batch_files WHERE id = ? AND tenant_id = ?", (file_id, tenant))
        return bytes(rows[0]["data"]) if rows else None

    def delete_file(self, tenant: str, file_id: str) -> bool:
        """Delete a file; an unfinished batch reading it keeps its own copy of the bytes first."""
        marks = ",".join("?" * len(ACTIVE))

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(
                f"UPDATE batches SET input = (SELECT data FROM batch_files WHERE id = ? AND tenant_id = ?) "
                f"WHERE tenant_id = ? AND input IS NULL AND status IN ({marks}) AND {_INPUT_OF} = ?",
                (file_id, tenant, tenant, *ACTIVE, file_id),
            )
            gone = conn.execute("DELETE FROM batch_files WHERE id = ? AND tenant_id = ?", (file_id, tenant))
            return gone.rowcount > 0

        return self._tx(work)

    def input_of(self, batch_id: str) -> bytes | None:
        """The batch's input bytes: its input file, or the copy it kept when that file was deleted;
        None when neither is there."""
        rows = self._all(
            "SELECT COALESCE(b.input, f.data) AS data FROM batches b LEFT JOIN batch_files f "
            "ON f.id = json_extract(b.body, '$.input_file_id') AND f.tenant_id = b.tenant_id WHERE b.id = ?",
            (batch_id,),
        )
        return bytes(rows[0]["data"]) if rows and rows[0]["data"] is not None else None

    # ------------------------------------------------------------------ batches

    def add_batch(self, tenant: str, key_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        self._run(
            "INSERT INTO batches (id, tenant_id, key_id, status, created_at, body) VALUES (?, ?, ?, ?, ?, ?)",
            (body["id"], tenant, key_id, body["status"], body["created_at"], orjson.dumps(body).decode()),
        )
        return body

    def batch(self, batch_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        sql, params = "SELECT body FROM batches WHERE id = ?", (batch_id,)
        if tenant is not None:
            sql, params = sql + " AND tenant_id = ?", (batch_id, tenant)
        rows = self._all(sql, params)
        return orjson.loads(rows[0]["body"]) if rows else None

    def batches(self, tenant: str, limit: int = 20, after: str | None = None) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT id, body FROM batches WHERE tenant_id = ? ORDER BY created_at DESC, id DESC", (tenant,)
        )
        ids = [r["id"] for r in rows]
        start = ids.index(after) + 1 if after in ids else 0
        return [orjson.loads(r["body"]) for r in rows[start : start + limit]]

    def save(self, body: dict[str, Any]) -> None:
        """Overwrite the stored body (use `update` from a runner: it keeps a cancel)."""
        with self._lock:
            self._write(self._conn, body)

    def update(self, body: dict[str, Any]) -> str:
        """Store a running batch's progress without losing a cancel accepted meanwhile (then `body` says
        `cancelling` too); returns the status stored."""

        def work(conn: sqlite3.Connection) -> str:
            stored = self._body(conn, body["id"]) or {}
            if stored.get("status") == "cancelling" and body["status"] in CANCELLABLE:
                body.update(status="cancelling", cancelling_at=stored.get("cancelling_at"))
            self._write(conn, body)
            return str(body["status"])

        return self._tx(work)

    def cancel(self, batch_id: str, tenant: str) -> dict[str, Any] | None:
        """Mark the batch `cancelling` if it still can be; the stored batch (None: no such batch)."""

        def work(conn: sqlite3.Connection) -> dict[str, Any] | None:
            body = self._body(conn, batch_id, tenant)
            if body is not None and body["status"] in CANCELLABLE:
                body.update(status="cancelling", cancelling_at=int(time.time()))
                self._write(conn, body)
            return body

        return self._tx(work)

    def finalize(self, body: dict[str, Any]) -> bool:
        """Every line is answered: move to `finalizing` (no cancel is accepted after that), unless a
        cancel was accepted first (then False, and `body` says `cancelling`)."""

        def work(conn: sqlite3.Connection) -> bool:
            stored = self._body(conn, body["id"]) or {}
            if stored.get("status") == "cancelling":
                body.update(status="cancelling", cancelling_at=stored.get("cancelling_at"))
                return False
            body.update(status="finalizing", finalizing_at=int(time.time()))
            self._write(conn, body)
            return True

        return self._tx(work)

    def finish(self, body: dict[str, Any]) -> None:
        """Store the final body (keeping the time a cancel was accepted) and drop the line records and
        the input copy, which only a running batch needs."""

        def work(conn: sqlite3.Connection) -> None:
            stored = self._body(conn, body["id"]) or {}
            if stored.get("cancelling_at") and not body.get("cancelling_at"):
                body["cancelling_at"] = stored["cancelling_at"]
            self._write(conn, body)
            conn.execute("UPDATE batches SET input = NULL WHERE id = ?", (body["id"],))
            conn.execute("DELETE FROM batch_lines WHERE batch_id = ?", (body["id"],))

        self._tx(work)

    def save_progress(
        self, batch_id: str, lines: list[tuple[int, bool, bytes]], counts: dict[str, int]
    ) -> str:
        """Record answered (and booked) lines and the batch's counts in one write, so a process resuming
        the batch never sends or books them again; returns the stored status (`cancelling`: stop)."""

        def work(conn: sqlite3.Connection) -> str:
            conn.executemany(
                "INSERT OR REPLACE INTO batch_lines VALUES (?, ?, ?, ?)",
                [(batch_id, i, int(ok), raw) for i, ok, raw in lines],
            )
            body = self._body(conn, batch_id)
            if body is None:
                return "failed"
            body["request_counts"].update(counts)
            self._write(conn, body)
            return str(body["status"])

        return self._tx(work)

    def tenant_of(self, batch_id: str) -> tuple[str, str | None]:
        (row,) = self._all("SELECT tenant_id, key_id FROM batches WHERE id = ?", (batch_id,))
        return row["tenant_id"], row["key_id"]

    def upstream(self, batch_id: str) -> dict[str, Any] | None:
        rows = self._all("SELECT upstream FROM batches WHERE id = ?", (batch_id,))
        return orjson.loads(rows[0]["upstream"]) if rows and rows[0]["upstream"] else None

    def set_upstream(self, batch_id: str, upstream: dict[str, Any] | None) -> None:
        """Where the job runs at the provider; `batch_id` None while it is being submitted; None: not
        forwarded (or a submission to retry)."""
        value = None if upstream is None else orjson.dumps(upstream).decode()
        self._run("UPDATE batches SET upstream = ? WHERE id = ?", (value, batch_id))

    def done_lines(self, batch_id: str) -> dict[int, tuple[bool, bytes]]:
        rows = self._all("SELECT line, ok, output FROM batch_lines WHERE batch_id = ?", (batch_id,))
        return {r["line"]: (bool(r["ok"]), bytes(r["output"])) for r in rows}

    def claim(self, owner: str) -> list[str]:
        """Active batches nobody runs yet (or this owner runs), now owned by `owner`."""
        marks = ",".join("?" * len(ACTIVE))
        with self._lock:
            self._conn.execute(
                f"UPDATE batches SET owner = ? WHERE owner IS NULL AND status IN ({marks})", (owner, *ACTIVE)
            )
            rows = self._conn.execute(
                f"SELECT id FROM batches WHERE owner = ? AND status IN ({marks}) ORDER BY created_at",
                (owner, *ACTIVE),
            ).fetchall()
        return [r["id"] for r in rows]

    def owners(self) -> list[str]:
        marks = ",".join("?" * len(ACTIVE))
        rows = self._all(
            f"SELECT DISTINCT owner FROM batches WHERE owner IS NOT NULL AND status IN ({marks})", ACTIVE
        )
        return [r["owner"] for r in rows]

    def release(self, owner: str) -> None:
        """Hand this owner's unfinished batches to the next process that starts (on shutdown)."""
        self._run("UPDATE batches SET owner = NULL WHERE owner = ?", (owner,))
