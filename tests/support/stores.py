"""Real Redis and Postgres for tests: one server of each per test session, fresh state per test.

Redis is Debian's `redis-server` on a free loopback port with persistence off; Postgres comes from the
`pgserver` package (bundled binaries, pgvector included). `redis_url` flushes the server before each
test; `postgres_dsn` hands each test its own new database.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A throwaway redis-server process."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def _wait(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PostgresServer:
    """A pgserver-managed Postgres; `new_database()` gives a fresh database's DSN."""

    def __init__(self, datadir: Path) -> None:
        import pgserver

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset in CI
            self.server = pgserver.get_server(str(datadir), cleanup_mode="stop")
        self._names = itertools.count()

    @property
    def uri(self) -> str:
        return self.server.get_uri()

    def new_database(self) -> str:
        name = f"t{next(self._names)}_{time.monotonic_ns() % 10**9}"
        self.server.psql(f"CREATE DATABASE {name};")
        return self.server.get_uri(name)

    def stop(self) -> None:
        self.server.cleanup()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of a real, empty Redis."""
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Run as root, pgserver starts postgres as an unprivileged user, which cannot enter pytest's
    # private (0700) temp folders: use a folder of our own that it may read.
    root = Path(tempfile.mkdtemp(prefix="thrifty-pg-"))
    root.chmod(0o755)
    server = PostgresServer(root / "data")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """DSN of a new, empty database on a real Postgres (pgvector available: CREATE EXTENSION vector)."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_where(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The `ledger:` config of each backend the report runs on: a SQLite file, a fresh Postgres database."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "ledger.db")}
    return {"backend": "postgres", "dsn": request.getfixturevalue("postgres_dsn")}
