"""Structured logs: a JSON formatter with request ids, secret redaction, and one access line per request.

No secrets or prompt text reach the logs: the formatter scrubs bearer tokens, `sk-…` keys and the
configured keys from every message; request bodies are logged only with `log_prompts: true`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

import orjson

from thrifty.redact import Redactor
from thrifty.types import new_request_id

REQUEST_ID: ContextVar[str | None] = ContextVar("thrifty_request_id", default=None)
"""The id of the request being served in this task (set by AccessLog; read by the formatter)."""
_VALID_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
PROMPT_BYTES = 8192


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id and any `extra=` fields."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = self.redact(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exception"] = self.redact(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """The plain format, with the same redaction and the request id when there is one."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        text = self.redact(super().format(record))
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        return f"{text} [{request_id}]" if request_id else text


def log_config(fmt: str, level: str, secrets: Iterable[str | None] = ()) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn and thrifty (applied in every worker)."""
    factory = JsonFormatter if fmt == "json" else TextFormatter
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": factory, "secrets": list(s for s in secrets if s)}},
        "handlers": {"main": handler},
        "loggers": {
            "thrifty": {"handlers": ["main"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["main"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["main"], "level": "WARNING"},
    }


class AccessLog:
    """ASGI middleware: gives every request a new id (`x-request-id`, the ledger's key: a client's id
    could be reused, and two requests must never share one), keeps a valid id the client sent
    (`x-client-request-id`, or `x-request-id`) as its client request id, echoed back and logged, and
    logs one `thrifty.access` line per request: method, path, status, duration, model, cost."""

    def __init__(self, app: Any, *, log_prompts: bool = False) -> None:
        self.app = app
        self.log_prompts = log_prompts
        self.log = logging.getLogger("thrifty.access")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, client_id = self._ensure_id(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500}
        body = bytearray()

        async def receive_logged() -> Any:
            message = await receive()
            if message["type"] == "http.request" and len(body) < PROMPT_BYTES:
                body.extend(message.get("body", b"")[: PROMPT_BYTES - len(body)])
            return message

        async def send_logged(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                seen["model"] = headers.get("x-thrifty-model")
                seen["cost"] = headers.get("x-thrifty-cost-usd")
                named = [(b"x-request-id", request_id)] if "x-request-id" not in headers else []
                if client_id and "x-client-request-id" not in headers:
                    named.append((b"x-client-request-id", client_id))
                if named:  # every answer names its request (and the client's own id for it)
                    extra_headers = [(k, v.encode()) for k, v in named]
                    message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive_logged if self.log_prompts else receive, send_logged)
        finally:
            extra: dict[str, Any] = {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": seen["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "model": seen.get("model"),
                "cost_usd": float(seen["cost"]) if seen.get("cost") else None,
            }
            if client_id:
                extra["client_request_id"] = client_id
            if self.log_prompts and body:
                extra["request_body"] = body.decode("utf-8", errors="replace")
            self.log.info("%s %s %s", scope.get("method"), scope.get("path"), seen["status"], extra=extra)
            REQUEST_ID.reset(token)

    @staticmethod
    def _ensure_id(scope: dict[str, Any]) -> tuple[str, str | None]:
        """(the request's new id, the client's valid id or None); the app reads both from the scope's
        `x-request-id` and `x-client-request-id` headers."""
        names = (b"x-request-id", b"x-client-request-id")
        given = {k.lower(): v for k, v in scope.get("headers", []) if k.lower() in names}
        text = (given.get(b"x-client-request-id") or given.get(b"x-request-id") or b"").decode("latin-1")
        client_id = text if _VALID_ID.fullmatch(text) else None
        request_id = new_request_id()
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in names]
        headers.append((b"x-request-id", request_id.encode()))
        if client_id:
            headers.append((b"x-client-request-id", client_id.encode()))
        scope["headers"] = headers
        return request_id, client_id


def config_secrets(config: Any) -> list[str]:
    """The keys in a Config that must never be logged: master key and provider API keys."""
    keys = [config.server.master_key]
    keys += [p.api_key for p in config.providers.values()]
    return [k for k in keys if k]
