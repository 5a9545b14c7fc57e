"""The `cache:` config section: what is cached, for how long, where, and per-model overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from thrifty.config import Section


class CacheOverride(Section):
    """Per-model policy (keyed by the model the client asked for); unset fields inherit."""

    enabled: bool | None = None
    ttl_s: float | None = Field(None, gt=0)
    semantic: bool | None = None
    allow_nondeterministic: bool | None = None


class CacheConfig(Section):
    enabled: bool = False
    ttl_s: float = Field(86_400.0, gt=0)
    """How long an answer stays servable."""
    max_entries: int = Field(100_000, ge=1)
    """Size bound of the SQLite/Postgres stores; least recently used entries go first."""
    backend: Literal["sqlite", "redis", "postgres"] = "sqlite"
    """Where exact entries live."""
    path: str = "thrifty-cache.db"
    """SQLite file (exact entries with backend sqlite; semantic entries unless Postgres is used)."""
    redis_url: str | None = None
    postgres_dsn: str | None = None
    semantic_backend: Literal["sqlite", "postgres"] | None = None
    """Where semantic entries live; default: postgres when `postgres_dsn` is set, else sqlite."""
    semantic: bool = False
    verifier: str | None = None
    """Path of a trained verifier model; default: the one bundled with thrifty."""
    verifier_cosine: float | None = Field(None, ge=-1, le=1)
    """Use a plain cosine threshold instead of the learned verifier (ablations, tests)."""
    min_cosine: float = Field(0.7, ge=-1, le=1)
    """Neighbours below this cosine are never shown to the verifier."""
    top_k: int = Field(4, ge=1, le=64)
    """Nearest stored requests shown to the verifier per lookup."""
    cross_checks: int = Field(1, ge=0, le=64)
    """At most this many of them go through the verifier's cross-encoder stage (the best ones by its
    earlier stages): each costs ~4 ms on one core. 0 disables the stage (its candidates are refused)."""
    allow_nondeterministic: bool = False
    """Also cache requests that set `temperature` > 0 (each asks for a fresh sample)."""
    coalesce_wait_s: float = Field(30.0, ge=0, le=600)
    """A miss whose identical twin is already upstream waits up to this long for its answer instead
    of paying for a second call (per process); 0 turns it off."""
    store_timeout_s: float = Field(2.0, gt=0, le=60)
    """A store call (lookup or write) slower than this counts as a failure: the request goes on as a miss."""
    store_cooldown_s: float = Field(5.0, ge=0, le=600)
    """After a store failure, requests skip that store (exact or semantic) for this long, then retry it."""
    models: dict[str, CacheOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_backends(self) -> CacheConfig:
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("cache.backend redis needs cache.redis_url")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("cache.redis_url must start with redis://, rediss:// or unix://")
        if (self.backend == "postgres" or self.semantic_backend == "postgres") and not self.postgres_dsn:
            raise ValueError("a postgres cache backend needs cache.postgres_dsn")
        return self

    def semantic_store(self) -> Literal["sqlite", "postgres"]:
        if self.semantic_backend is not None:
            return self.semantic_backend
        return "postgres" if self.postgres_dsn else "sqlite"

    def policy(self, model: str) -> Policy:
        override = self.models.get(model) or CacheOverride()
        return Policy(
            enabled=self.enabled if override.enabled is None else override.enabled,
            ttl_s=self.ttl_s if override.ttl_s is None else override.ttl_s,
            semantic=self.semantic if override.semantic is None else override.semantic,
            allow_nondeterministic=(
                self.allow_nondeterministic
                if override.allow_nondeterministic is None
                else override.allow_nondeterministic
            ),
        )

    def any_enabled(self) -> bool:
        return self.enabled or any(o.enabled for o in self.models.values())

    def any_semantic(self) -> bool:
        return self.semantic or any(o.semantic for o in self.models.values())


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective cache policy for one requested model."""

    enabled: bool
    ttl_s: float
    semantic: bool
    allow_nondeterministic: bool
