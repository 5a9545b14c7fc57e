"""Per-request routing hints, and stripping thrifty-only fields before a request goes upstream.

A client may send hints as headers (`x-thrifty-route-task: code`, `x-thrifty-quality-target: 0.9`;
the server folds them into the body's `thrifty` object), in a `thrifty` body object
(`{"task": "code", "quality_target": 0.9}`) or in `metadata` (`thrifty_task`, `thrifty_quality_target`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from thrifty.errors import InvalidRequest
from thrifty.routing.classifier import TASKS
from thrifty.types import Body

HEADERS = {"x-thrifty-route-task": "task", "x-thrifty-quality-target": "quality_target"}
FIELDS = ("task", "quality_target")


@dataclass(slots=True, frozen=True)
class Hints:
    task: str | None = None
    quality_target: float | None = None


def fold_headers(headers: Mapping[str, str], body: Any) -> Any:
    """Copy routing hint headers into `body["thrifty"]`. Precedence: the body's `thrifty` object, then
    its `metadata.thrifty_*` keys, then headers. Returns the body."""
    found = {field: headers[name] for name, field in HEADERS.items() if headers.get(name)}
    if not found or not isinstance(body, dict):
        return body
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    found = {k: v for k, v in found.items() if f"thrifty_{k}" not in meta}
    given = body.get("thrifty")
    if given is not None and not isinstance(given, dict):
        return body  # validation reports the bad field (a 400 naming `thrifty`)
    return {**body, "thrifty": {**found, **(given or {})}}


def _target(value: Any, param: str) -> float:
    if isinstance(value, bool):  # float(True) is 1.0: a boolean is not a target
        raise InvalidRequest(f"{param} must be a number between 0 and 1, got {value!r}", param=param)
    try:
        target = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{param} must be a number between 0 and 1", param=param) from None
    if not 0.0 <= target <= 1.0:
        raise InvalidRequest(f"{param} must be between 0 and 1, got {target}", param=param)
    return target


def read_hints(body: Body) -> Hints:
    """Hints from the body's `thrifty` object and `metadata.thrifty_*` keys; bad values are 400s."""
    given = body.get("thrifty")
    if given is not None and not isinstance(given, dict):
        raise InvalidRequest("'thrifty' must be an object", param="thrifty")
    given = dict(given or {})
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    for field in FIELDS:
        if field not in given and f"thrifty_{field}" in meta:
            given[field] = meta[f"thrifty_{field}"]
    task = given.get("task")
    if task is not None and task not in TASKS:
        raise InvalidRequest(
            f"thrifty.task must be one of {', '.join(TASKS)}; got {task!r}", param="thrifty.task"
        )
    target = given.get("quality_target")
    return Hints(
        task=task, quality_target=None if target is None else _target(target, "thrifty.quality_target")
    )


def strip(body: Body) -> Body:
    """The body without thrifty-only fields (`thrifty`, `metadata.thrifty_*`)."""
    if "thrifty" not in body and not any(
        k.startswith("thrifty_") for k in (body.get("metadata") or {}) if isinstance(k, str)
    ):
        return body
    out = {k: v for k, v in body.items() if k != "thrifty"}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not str(k).startswith("thrifty_")}
        if kept:
            out["metadata"] = kept
        else:
            out.pop("metadata")
    return out
