"""Virtual keys: what a key is, how one is minted and hashed, and the KeyStore seam."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

PREFIX = "sk-thr-"
_DEFAULT_PEPPER = "thrifty-virtual-key-v1"

COLUMNS: tuple[str, ...] = (
    "id", "key_hash", "hint", "tenant", "name", "models", "budgets", "rate_limits", "expires_at",
    "metadata", "revoked", "created_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Budgets:
    """USD limits; None means no limit for that window (days and months are UTC)."""

    daily_usd: float | None = None
    monthly_usd: float | None = None
    total_usd: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.daily_usd, self.monthly_usd, self.total_usd))


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute limits; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None

    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A stored key. The secret itself is never stored, only its hash and a display hint."""

    id: str
    tenant: str
    hint: str
    name: str | None = None
    models: tuple[str, ...] | None = None
    budgets: Budgets = field(default_factory=Budgets)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    revoked: bool = False
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    def unusable_reason(self, now: float | None = None) -> str | None:
        """Why this key cannot be used right now, or None."""
        if self.revoked:
            return "This API key has been revoked."
        if self.expires_at is not None and (now or time.time()) >= self.expires_at:
            return "This API key has expired."
        return None

    def public(self) -> dict[str, Any]:
        """The key as the admin API shows it (no secret, no hash)."""
        return {
            "id": self.id,
            "object": "virtual_key",
            "tenant": self.tenant,
            "name": self.name,
            "key_hint": self.hint,
            "models": list(self.models) if self.models is not None else None,
            "budgets": {
                "daily_usd": self.budgets.daily_usd,
                "monthly_usd": self.budgets.monthly_usd,
                "total_usd": self.budgets.total_usd,
            },
            "rate_limits": {"rpm": self.rate_limits.rpm, "tpm": self.rate_limits.tpm},
            "expires_at": self.expires_at,
            "metadata": self.metadata,
            "revoked": self.revoked,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def with_changes(self, changes: dict[str, Any]) -> VirtualKey:
        return replace(self, **changes, updated_at=time.time())


class KeyHasher:
    """HMAC-SHA256 of a key under a server-side pepper."""

    def __init__(self, pepper: str | None = None) -> None:
        self._pepper = (pepper or _DEFAULT_PEPPER).encode()

    def hash(self, token: str) -> str:
        return hmac.new(self._pepper, token.encode(), hashlib.sha256).hexdigest()


def mint(tenant: str | None, **fields: Any) -> tuple[str, VirtualKey]:
    """A new random key: (the secret, shown once; its record). Tenant None: a tenant of its own."""
    secret = secrets.token_urlsafe(32)
    token = PREFIX + secret
    key_id = "key_" + secrets.token_hex(8)
    key = VirtualKey(id=key_id, tenant=tenant or key_id, hint=f"{PREFIX}{secret[:4]}…{secret[-4:]}", **fields)
    return token, key


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX) and 16 < len(token) < 200


# ---- rows shared by the SQL backends


def to_row(key: VirtualKey, key_hash: str) -> tuple[Any, ...]:
    b, r = key.budgets, key.rate_limits
    return (
        key.id, key_hash, key.hint, key.tenant, key.name,
        orjson.dumps(list(key.models)).decode() if key.models is not None else None,
        orjson.dumps({"daily_usd": b.daily_usd, "monthly_usd": b.monthly_usd,
                      "total_usd": b.total_usd}).decode(),
        orjson.dumps({"rpm": r.rpm, "tpm": r.tpm}).decode(),
        key.expires_at, orjson.dumps(key.metadata).decode(), int(key.revoked), key.created_at, key.updated_at,
    )  # fmt: skip


def from_row(row: dict[str, Any]) -> VirtualKey:
    models = orjson.loads(row["models"]) if row["models"] is not None else None
    return VirtualKey(
        id=row["id"],
        tenant=row["tenant"],
        hint=row["hint"],
        name=row["name"],
        models=tuple(models) if models is not None else None,
        budgets=Budgets(**orjson.loads(row["budgets"] or "{}")),
        rate_limits=RateLimits(**orjson.loads(row["rate_limits"] or "{}")),
        expires_at=row["expires_at"],
        metadata=orjson.loads(row["metadata"] or "{}"),
        revoked=bool(row["revoked"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class KeyStore(ABC):
    """Durable home of virtual keys (SQLite for one machine, Postgres for several replicas)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise if the store is unreachable."""

    @abstractmethod
    async def insert(self, key: VirtualKey, key_hash: str) -> None: ...

    @abstractmethod
    async def by_hash(self, key_hash: str) -> VirtualKey | None: ...

    @abstractmethod
    async def by_id(self, key_id: str) -> VirtualKey | None: ...

    @abstractmethod
    async def list(self, tenant: str | None = None, include_revoked: bool = True) -> list[VirtualKey]: ...

    @abstractmethod
    async def save(self, key: VirtualKey) -> None:
        """Overwrite every field of an existing key except its hash."""

    @abstractmethod
    async def count(self) -> int: ...
