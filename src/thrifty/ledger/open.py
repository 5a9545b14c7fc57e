"""Opens the ledger backend the config names."""

from __future__ import annotations

from thrifty.config import LedgerConfig
from thrifty.errors import ConfigError
from thrifty.ledger.base import Ledger


def open_ledger(config: LedgerConfig) -> Ledger:
    if config.backend == "sqlite":
        from thrifty.ledger.sqlite import SQLiteLedger

        return SQLiteLedger(
            config.path,
            batch_size=config.batch_size,
            flush_interval_ms=config.flush_interval_ms,
            queue_size=config.queue_size,
        )
    if config.backend == "postgres":
        if not config.dsn:
            raise ConfigError([("ledger.dsn", "the postgres ledger needs a dsn (postgresql://…)")])
        from thrifty.ledger.postgres import PostgresLedger

        return PostgresLedger(
            config.dsn,
            batch_size=config.batch_size,
            flush_interval_ms=config.flush_interval_ms,
            queue_size=config.queue_size,
        )
    raise ConfigError([("ledger.backend", f"backend {config.backend!r} is not available in this build")])
