"""Per-request cache control: `x-thrifty-cache*` headers or the body's `thrifty` field.

    x-thrifty-cache: off | read_only | write_only | on        "thrifty": {"cache": "read_only",
    x-thrifty-cache-max-age: <seconds>                                     "max_age": 60,
    x-thrifty-cache-namespace: <name>                                      "namespace": "docs-bot"}

The server folds the headers into the body field (`fold_headers`); the body field wins. Bad values are
400s naming the header or field. Thrifty-only fields never reach a provider (the Gateway strips them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from thrifty.errors import InvalidRequest

Mode = Literal["off", "read_only", "write_only", "on"]
MODES: tuple[Mode, ...] = ("off", "read_only", "write_only", "on")
HEADER_MODE = "x-thrifty-cache"
HEADER_MAX_AGE = "x-thrifty-cache-max-age"
HEADER_NAMESPACE = "x-thrifty-cache-namespace"
_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class CacheControl:
    mode: Mode = "on"
    max_age: float | None = None
    """Serve only entries younger than this many seconds."""
    namespace: str = "default"

    @property
    def reads(self) -> bool:
        return self.mode in ("on", "read_only")

    @property
    def writes(self) -> bool:
        return self.mode in ("on", "write_only")


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_cache_control")


def _mode(value: Any, param: str) -> Mode:
    if isinstance(value, str) and value.strip().lower() in MODES:
        return value.strip().lower()  # type: ignore[return-value]
    raise _bad(f"'{param}' must be one of {', '.join(MODES)}; got {value!r}", param)


def _max_age(value: Any, param: str) -> float:
    if isinstance(value, str):
        if not _SECONDS.fullmatch(value.strip()):
            raise _bad(f"'{param}' must be a number of seconds; got {value!r}", param)
        value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise _bad(f"'{param}' must be a non-negative number of seconds; got {value!r}", param)
    return float(value)


def _namespace(value: Any, param: str) -> str:
    if isinstance(value, str) and _NAMESPACE.fullmatch(value):
        return value
    raise _bad(
        f"'{param}' must be 1-64 characters of letters, digits, '_', '.', ':' or '-'; got {value!r}", param
    )


def fold_headers(headers: Mapping[str, str], body: Any) -> Any:
    """Validate the cache headers (400s name the header) and copy them into `body["thrifty"]`, where
    the cache stage reads them; fields already in the body win. Returns the body."""
    found: dict[str, Any] = {}
    if headers.get(HEADER_MODE):
        found["cache"] = _mode(headers[HEADER_MODE], HEADER_MODE)
    if headers.get(HEADER_MAX_AGE):
        found["max_age"] = _max_age(headers[HEADER_MAX_AGE], HEADER_MAX_AGE)
    if headers.get(HEADER_NAMESPACE):
        found["namespace"] = _namespace(headers[HEADER_NAMESPACE], HEADER_NAMESPACE)
    if not found or not isinstance(body, dict):
        return body
    given = body.get("thrifty")
    if given is not None and not isinstance(given, dict):
        return body  # the stage reports the bad field
    return {**body, "thrifty": {**found, **(given or {})}}


def parse_control(field: Any) -> CacheControl:
    """The cache control in a request's `thrifty` body field (None: defaults)."""
    if field is None:
        return CacheControl()
    if not isinstance(field, dict):
        raise _bad("'thrifty' must be an object", "thrifty")
    mode: Mode = "on" if field.get("cache") is None else _mode(field["cache"], "thrifty.cache")
    max_age = None if field.get("max_age") is None else _max_age(field["max_age"], "thrifty.max_age")
    namespace = (
        "default" if field.get("namespace") is None else _namespace(field["namespace"], "thrifty.namespace")
    )
    return CacheControl(mode=mode, max_age=max_age, namespace=namespace)
