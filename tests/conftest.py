from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import GatewayProcess, start_gateway
from tests.support.stores import (  # noqa: F401
    ledger_where,
    postgres_dsn,
    postgres_server,
    redis_server,
    redis_url,
)
from thrifty.testing.fake_provider import FakeProvider

PROVIDER_SECRET = "sk-fake-provider-secret-0123456789"


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


def base_config(fake: FakeProvider) -> dict[str, Any]:
    """A config whose providers all point at the fake provider."""
    return {
        "providers": {
            "fakeai": {"type": "openai", "base_url": fake.openai_base_url, "api_key": PROVIDER_SECRET},
            "fakeanthropic": {
                "type": "anthropic",
                "base_url": fake.anthropic_base_url,
                "api_key": PROVIDER_SECRET,
            },
        },
        "models": {
            "gpt-4o": {"deployments": [{"provider": "fakeai"}]},
            "gpt-4o-mini": {"deployments": [{"provider": "fakeai"}]},
            "text-embedding-3-small": {"deployments": [{"provider": "fakeai"}]},
            "claude-sonnet-4-5": {"deployments": [{"provider": "fakeanthropic"}]},
            "resilient": {
                "price": "gpt-4o-mini",
                "deployments": [
                    {"provider": "fakeai", "model": "primary-up", "priority": 0},
                    {"provider": "fakeai", "model": "backup-up", "priority": 1},
                ],
            },
            "flaky": {
                "price": "gpt-4o",
                "deployments": [{"provider": "fakeai", "model": "flaky-up"}],
                "fallbacks": ["claude-sonnet-4-5"],
            },
        },
        "retry": {"max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "retry_after_max_s": 2},
        "breaker": {"failure_threshold": 3, "cooldown_s": 1.0},
    }


@pytest.fixture
def gateway_factory(tmp_path: Path, fake: FakeProvider) -> Iterator[Any]:
    started: list[GatewayProcess] = []

    def start(config: dict[str, Any] | None = None, **kwargs: Any) -> GatewayProcess:
        gp = start_gateway(tmp_path, config if config is not None else base_config(fake), **kwargs)
        started.append(gp)
        return gp

    yield start
    for gp in started:
        gp.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeProvider) -> Iterator[GatewayProcess]:
    """One gateway on the base config per test module (tests find their rows by request id)."""
    gp = start_gateway(tmp_path_factory.mktemp("gw"), base_config(fake_server))
    yield gp
    gp.stop()


def ledger_rows(
    path: Path, *, expect: int = 0, timeout: float = 10.0, request_id: str | None = None
) -> list[dict[str, Any]]:
    """Rows of a SQLite ledger (optionally of one request), waiting until at least `expect` are there
    (the writer batches)."""
    deadline = time.monotonic() + timeout
    sql, params = "SELECT * FROM ledger ORDER BY id", ()
    if request_id is not None:
        sql, params = "SELECT * FROM ledger WHERE request_id = ? ORDER BY id", (request_id,)
    while True:
        rows: list[dict[str, Any]] = []
        if path.exists():
            conn = sqlite3.connect(path)
            conn.row_factory = sqlite3.Row
            try:
                rows = [dict(r) for r in conn.execute(sql, params)]
            except sqlite3.OperationalError:
                rows = []
            finally:
                conn.close()
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
