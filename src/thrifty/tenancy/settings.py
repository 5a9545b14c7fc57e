"""The `tenancy:` config section: virtual keys, budgets, rate limits and the shared state they use."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thrifty.config import Section

OnStateError = Literal["fail_closed", "fail_open"]


class StateConfig(Section):
    """Shared state for several replicas. Unset: one process, state in SQLite and memory."""

    redis_url: str | None = None
    """Counters: budget reservations and rate limits (e.g. `redis://redis:6379/0`)."""
    postgres_dsn: str | None = None
    """Virtual keys (e.g. `postgresql://thrifty@db/thrifty`)."""
    timeout_s: float = Field(1.0, gt=0)
    """Connect / command timeout towards Redis and Postgres."""


class KeysConfig(Section):
    store: Literal["auto", "sqlite", "postgres"] = "auto"
    """`auto`: Postgres when `state.postgres_dsn` is set, else SQLite."""
    path: str | None = None
    """SQLite file; default `thrifty-keys.db` next to the ledger."""
    pepper: str | None = None
    """Server-side secret mixed into key hashes (HMAC-SHA256). Changing it invalidates every key."""
    cache_ttl_s: float = Field(2.0, ge=0)
    """How long a replica trusts a looked-up key: the delay before a revocation elsewhere is seen."""
    stale_ttl_s: float = Field(300.0, ge=0)
    """While the key store is unreachable, keys looked up within this window keep working."""


class BudgetsConfig(Section):
    backend: Literal["auto", "memory", "redis"] = "auto"
    """`auto`: Redis when `state.redis_url` is set, else in-process."""
    default_max_tokens: int = Field(4096, ge=1)
    """Worst-case output tokens reserved for a request that sets no `max_tokens`."""
    over_budget_status: Literal[402, 429] = 429
    reservation_ttl_s: float = Field(900.0, gt=0)
    """A reservation whose request never settles (its replica died) expires after this; a running batch
    renews its hold at least every third of it."""
    on_state_error: OnStateError = "fail_closed"


class RateLimitsConfig(Section):
    backend: Literal["auto", "memory", "redis"] = "auto"
    on_state_error: OnStateError = "fail_open"


class TenancyConfig(Section):
    enabled: bool | None = None
    """Virtual keys, budgets and rate limits; default: on when `server.master_key` is set."""
    state: StateConfig = Field(default_factory=StateConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)

    @model_validator(mode="after")
    def _check_backends(self) -> TenancyConfig:
        if self.keys.store == "postgres" and not self.state.postgres_dsn:
            raise ValueError("tenancy.keys.store is postgres but tenancy.state.postgres_dsn is not set")
        for name, backend in (("budgets", self.budgets.backend), ("rate_limits", self.rate_limits.backend)):
            if backend == "redis" and not self.state.redis_url:
                raise ValueError(f"tenancy.{name}.backend is redis but tenancy.state.redis_url is not set")
        return self
