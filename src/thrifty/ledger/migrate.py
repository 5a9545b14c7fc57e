"""Numbered SQL migrations, applied in order once each."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str]]:
    """(version, sql) for every migration file, in order."""
    folder = resources.files("thrifty.ledger").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text()))
    return sorted(found)


def apply_sqlite(conn) -> int:
    """Apply pending migrations to a sqlite3 connection; return the resulting version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    version = max(done, default=0)
    for number, sql in migrations():
        if number in done:
            continue
        with conn:
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (number,))
        version = number
    return version
