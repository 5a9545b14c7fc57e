"""Builds the tenancy parts from config (key store, budgets, rate limits) and reports their health."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.tenancy.budgets import BudgetBackend, MemoryBudgets
from thrifty.tenancy.directory import KeyDirectory
from thrifty.tenancy.keys import KeyHasher, KeyStore
from thrifty.tenancy.ratelimit import MemoryRateLimiter, RateLimiter
from thrifty.tenancy.redis_state import RedisState
from thrifty.tenancy.settings import TenancyConfig
from thrifty.tenancy.stage import LimitsStage

if TYPE_CHECKING:
    from thrifty.config import Config
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.tenancy")

_SPEND_SQL = (
    "SELECT key_id, COALESCE(SUM(cost_usd), 0) AS total, "
    "COALESCE(SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END), 0) AS monthly, "
    "COALESCE(SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END), 0) AS daily "
    "FROM ledger WHERE key_id IS NOT NULL GROUP BY key_id"
)


def enabled(config: Config) -> bool:
    return config.tenancy_enabled()


def _key_store(config: Config) -> KeyStore:
    settings: TenancyConfig = config.tenancy
    dsn = settings.state.postgres_dsn
    if settings.keys.store == "postgres" or (settings.keys.store == "auto" and dsn):
        from thrifty.tenancy.store_postgres import PostgresKeyStore

        assert dsn is not None  # checked by TenancyConfig
        return PostgresKeyStore(dsn, timeout_s=settings.state.timeout_s)
    from thrifty.tenancy.store_sqlite import SQLiteKeyStore

    path = settings.keys.path
    if path is None:
        ledger_dir = Path(config.ledger.path).parent if config.ledger.backend == "sqlite" else Path(".")
        path = str(ledger_dir / "thrifty-keys.db")
    return SQLiteKeyStore(path)


def _uses_redis(backend: str, redis: RedisState | None) -> bool:
    return backend == "redis" or (backend == "auto" and redis is not None)


class Tenancy:
    """Everything tenancy needs at run time, owned by one Gateway (through its limits stage)."""

    def __init__(self, config: Config, gateway: Gateway) -> None:
        settings: TenancyConfig = config.tenancy
        self.settings = settings
        self.store = _key_store(config)
        self.directory = KeyDirectory(
            self.store,
            KeyHasher(settings.keys.pepper),
            ttl=settings.keys.cache_ttl_s,
            stale_ttl=settings.keys.stale_ttl_s,
        )
        url = settings.state.redis_url
        self.redis = RedisState(url, timeout_s=settings.state.timeout_s) if url else None
        self.budgets: BudgetBackend = MemoryBudgets()
        self.limiter: RateLimiter = MemoryRateLimiter()
        if self.redis is not None and _uses_redis(settings.budgets.backend, self.redis):
            from thrifty.tenancy.budgets_redis import RedisBudgets

            self.budgets = RedisBudgets(self.redis)
        if self.redis is not None and _uses_redis(settings.rate_limits.backend, self.redis):
            from thrifty.tenancy.ratelimit import RedisRateLimiter

            self.limiter = RedisRateLimiter(self.redis)
        self.stage = LimitsStage(
            settings, self.directory, self.budgets, self.limiter, gateway.table, gateway.tokens
        )
        self.stage.owner = self
        self.ledger = gateway.ledger
        self._started = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the key store and load in-process budget counters from the ledger (once).
        An unreachable store is logged (and shown by /readyz), not fatal."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            self._started = True
            try:
                await self.store.start()
            except Exception as exc:
                log.error("key store unreachable at start: %s", type(exc).__name__)
            if isinstance(self.budgets, MemoryBudgets):
                await self._load_spend()

    async def _load_spend(self) -> None:
        now = time.time()
        day = now - now % 86400
        month = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        try:
            rows = await asyncio.to_thread(self.ledger.query, _SPEND_SQL, [month.timestamp(), day])
        except Exception as exc:
            log.warning("budgets start at zero: the ledger could not be read (%s)", type(exc).__name__)
            return
        spent = {r["key_id"]: {n: r[n] for n in ("daily", "monthly", "total")} for r in rows}
        assert isinstance(self.budgets, MemoryBudgets)
        self.budgets.load(spent, now)

    async def aclose(self) -> None:
        await self.store.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def health(self) -> tuple[dict[str, Any], bool]:
        """(checks for /readyz, ready). A fail-closed part that is unreachable makes the replica not ready."""
        parts = [
            ("keys", self.store.ping, "fail_closed"),
            (self.budgets.name, self.budgets.ping, self.settings.budgets.on_state_error),
            (self.limiter.name, self.limiter.ping, self.settings.rate_limits.on_state_error),
        ]
        results = await asyncio.gather(*(_probe(ping) for _, ping, _ in parts))
        checks: dict[str, Any] = {}
        ready = True
        for (name, _, mode), error in zip(parts, results, strict=True):
            if error is None:
                checks[name] = "ok"
                continue
            checks[name] = f"unreachable ({error}); {mode}"
            ready = ready and mode == "fail_open"
        return checks, ready


async def _probe(ping: Any) -> str | None:
    try:
        await asyncio.wait_for(ping(), 3.0)
    except Exception as exc:
        return type(exc).__name__
    return None


def build_stage(gateway: Gateway) -> LimitsStage | None:
    """The limits stage for `build_stages`, or None when tenancy is off."""
    if not enabled(gateway.config):
        return None
    return Tenancy(gateway.config, gateway).stage


def tenancy_of(gateway: Gateway) -> Tenancy | None:
    for stage in gateway.stages:
        if isinstance(stage, LimitsStage):
            return stage.owner
    return None
