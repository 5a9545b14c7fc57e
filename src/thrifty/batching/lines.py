"""Batch input files: parsing and validating the JSONL request lines, writing output lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.batching.store import new_id
from thrifty.errors import ThriftyError
from thrifty.request import validate_chat
from thrifty.types import Body, Tenant

ENDPOINTS = ("/v1/chat/completions",)
MAX_LINES = 50_000


@dataclass(slots=True)
class Line:
    custom_id: str
    body: Body


def parse_lines(data: bytes, endpoint: str, tenant: Tenant) -> tuple[list[Line], list[dict[str, Any]]]:
    """The request lines of an input file, and OpenAI-style errors for every line that is not valid."""
    lines: list[Line] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def fail(number: int, code: str, message: str) -> None:
        errors.append({"code": code, "message": message, "param": None, "line": number})

    # numbered as lines of the file (1-based), blank lines skipped but counted
    raw_lines = [(number, raw) for number, raw in enumerate(data.splitlines(), 1) if raw.strip()]
    if not raw_lines:
        fail(0, "empty_file", "The input file has no requests.")
    if len(raw_lines) > MAX_LINES:
        fail(0, "too_many_requests", f"A batch may hold at most {MAX_LINES} requests.")
        return [], errors
    for number, raw in raw_lines:
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            fail(number, "invalid_json_line", "This line is not valid JSON.")
            continue
        if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
            fail(number, "missing_required_parameter", "Each line needs a string custom_id.")
            continue
        if item["custom_id"] in seen:
            fail(number, "duplicate_custom_id", f"custom_id {item['custom_id']!r} is used twice.")
            continue
        seen.add(item["custom_id"])
        if item.get("method", "POST") != "POST" or item.get("url") != endpoint:
            fail(number, "invalid_url", f"Each line must be a POST to {endpoint}.")
            continue
        try:
            body = validate_chat(item.get("body"))
            allowed = tenant.allowed_models
            if allowed is not None and body["model"] not in allowed:
                raise ThriftyError(f"This key may not use model {body['model']!r}.")
        except ThriftyError as exc:
            fail(number, "invalid_request", exc.message)
            continue
        lines.append(Line(item["custom_id"], {k: v for k, v in body.items() if k != "stream"}))
    models = {line.body["model"] for line in lines}
    if len(models) > 1:
        fail(0, "mixed_models", f"All requests in a batch must use the same model, got {sorted(models)}.")
    return lines, errors


def batch_error(code: str, message: str) -> dict[str, Any]:
    """One entry of a Batch object's `errors.data`."""
    return {"code": code, "message": message, "param": None, "line": None}


def output_line(custom_id: str, status: int, request_id: str, body: Body) -> bytes:
    """One line of an output (status 200) or error file, in the OpenAI batch output shape."""
    line = {
        "id": new_id("batch_req_"),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": request_id, "body": body},
        "error": None,
    }
    return orjson.dumps(line) + b"\n"
