"""Per-request compression control: `x-thrifty-compress` header or the body's `thrifty.compress`.

    x-thrifty-compress: off | lossless | on          "thrifty": {"compress": "lossless"}

`on` (the default) compresses as the route's config says; `lossless` runs only the lossless
normalisation (no duplicate removal, no extraction, no summary); `off` sends the prompt as the
client wrote it. A request can only ask for less compression than its route is configured for, never
more. The server folds the header into the body field; the body field wins. A bad value is a 400
naming the header or field.
The mode is part of the exact-cache key (as every answer-changing `thrifty` field is), so a request
that opts out is never answered from the reply to a compressed prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from thrifty.errors import InvalidRequest
from thrifty.types import Body

Mode = Literal["off", "lossless", "on"]
MODES: tuple[Mode, ...] = ("off", "lossless", "on")
HEADER = "x-thrifty-compress"
FIELD = "compress"


def _mode(value: Any, param: str) -> Mode:
    if isinstance(value, str) and value.strip().lower() in MODES:
        return value.strip().lower()  # type: ignore[return-value]
    raise InvalidRequest(
        f"'{param}' must be one of {', '.join(MODES)}; got {value!r}", param=param, code="invalid_value"
    )


def fold_header(headers: Mapping[str, str], body: Any) -> Any:
    """Validate the header (a 400 names it) and copy it into `body["thrifty"]["compress"]` unless the
    body already says. Returns the body."""
    value = headers.get(HEADER)
    if not value or not isinstance(body, dict):
        return body
    mode = _mode(value, HEADER)
    given = body.get("thrifty")
    if given is not None and not isinstance(given, dict):
        return body  # validation reports the bad field
    return {**body, "thrifty": {FIELD: mode, **(given or {})}}


def read_mode(body: Body) -> Mode:
    """The request's compression mode (default `on`); a bad value is a 400."""
    given = body.get("thrifty")
    if not isinstance(given, dict) or given.get(FIELD) is None:
        return "on"
    return _mode(given[FIELD], f"thrifty.{FIELD}")
