"""What the admin API accepts to create or change a key, validated into VirtualKey fields."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thrifty.errors import InvalidRequest
from thrifty.tenancy.keys import Budgets, RateLimits, VirtualKey
from thrifty.types import MASTER_TENANT

LAST_EXPIRY = 253402300799.0
"""9999-12-31T23:59:59Z: the latest expiry a key may have (any later one no date type can show)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # no bool→number


class BudgetsSpec(_Strict):
    daily_usd: float | None = Field(None, ge=0)
    monthly_usd: float | None = Field(None, ge=0)
    total_usd: float | None = Field(None, ge=0)


class RateLimitsSpec(_Strict):
    rpm: int | None = Field(None, ge=1)
    """Requests per minute."""
    tpm: int | None = Field(None, ge=1)
    """Tokens (prompt + max output) per minute."""


class KeyUpdate(_Strict):
    tenant: str | None = Field(None, min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)
    models: list[str] | None = None
    """Models the key may use; null: all."""
    budgets: BudgetsSpec | None = None
    rate_limits: RateLimitsSpec | None = None
    expires_at: float | None = Field(None, ge=0, le=LAST_EXPIRY)
    """Unix time after which the key stops working (a past one expires the key now); up to 9999-12-31."""
    expires_in_s: float | None = Field(None, gt=0, le=LAST_EXPIRY)
    metadata: dict[str, Any] | None = None


class KeyCreate(KeyUpdate):
    tenant: str | None = Field(None, min_length=1, max_length=200)
    """None: the key is a tenant of its own (its id)."""


def _parse(model: type[_Strict], body: Any) -> Any:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"]) or None
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InvalidRequest(f"Invalid {path or 'body'}: {msg}.", param=path) from None


def create_fields(body: Any) -> tuple[str | None, dict[str, Any]]:
    """(tenant, VirtualKey fields) for a new key; tenant None: the key is a tenant of its own."""
    spec: KeyCreate = _parse(KeyCreate, body)
    _check_tenant(spec.tenant)
    fields = _fields(spec, spec.model_fields_set, current=None)
    return spec.tenant, fields


def update_fields(body: Any, current: VirtualKey) -> dict[str, Any]:
    """Changed VirtualKey fields: given fields replace, given budgets/limits merge into the current ones."""
    spec: KeyUpdate = _parse(KeyUpdate, body)
    if "tenant" in spec.model_fields_set and spec.tenant is None:
        raise InvalidRequest("Invalid tenant: must be a string.", param="tenant")
    _check_tenant(spec.tenant)
    return _fields(spec, spec.model_fields_set, current=current)


def _check_tenant(tenant: str | None) -> None:
    """A key must not share the master key's tenant: files, batches and cached answers are scoped by
    tenant, so such a key would read the administrator's."""
    if tenant == MASTER_TENANT:
        message = f"Invalid tenant: {MASTER_TENANT!r} is the master key's tenant; name the key's own."
        raise InvalidRequest(message, param="tenant")


def _fields(spec: KeyUpdate, given: set[str], current: VirtualKey | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "tenant" in given and current is not None:
        out["tenant"] = spec.tenant
    if "name" in given:
        out["name"] = spec.name
    if "models" in given:
        out["models"] = tuple(spec.models) if spec.models is not None else None
    if "budgets" in given:
        base = current.budgets if current is not None else Budgets()
        changes = spec.budgets.model_dump(exclude_unset=True) if spec.budgets is not None else {}
        out["budgets"] = Budgets(**{**_as_dict(base), **changes}) if spec.budgets is not None else Budgets()
    if "rate_limits" in given:
        base_rl = current.rate_limits if current is not None else RateLimits()
        changes = spec.rate_limits.model_dump(exclude_unset=True) if spec.rate_limits is not None else {}
        out["rate_limits"] = (
            RateLimits(**{**_as_dict(base_rl), **changes}) if spec.rate_limits is not None else RateLimits()
        )
    if "expires_at" in given:
        out["expires_at"] = spec.expires_at
    if spec.expires_in_s is not None:
        expires_at = time.time() + spec.expires_in_s
        if expires_at > LAST_EXPIRY:
            raise InvalidRequest(
                "Invalid expires_in_s: the key would expire after 9999-12-31.", param="expires_in_s"
            )
        out["expires_at"] = expires_at
    if "metadata" in given:
        out["metadata"] = spec.metadata or {}
    return out


def _as_dict(value: Budgets | RateLimits) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}  # type: ignore[attr-defined]
