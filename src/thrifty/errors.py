"""Errors that map to OpenAI-shaped error bodies with the right HTTP status."""

from __future__ import annotations

import math
from typing import Any


class ThriftyError(Exception):
    """Base error: carries the HTTP status and the OpenAI error `type`/`code`."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(ThriftyError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(ThriftyError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ThriftyError):
    status = 403
    type = "permission_error"


class ModelNotFound(ThriftyError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(ThriftyError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RateLimited(ThriftyError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(ThriftyError):
    """A provider call failed. `retryable` says whether another attempt may succeed."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.retry_after = retry_after
        # what the client sees is typed by its status, as OpenAI types it (the SDKs raise by status)
        self.type = {400: "invalid_request_error", 429: "rate_limit_error"}.get(self.status, self.type)
        if retry_after is not None:  # a client that gets this error waits as long as the provider asked
            self.headers["retry-after"] = str(max(0, math.ceil(retry_after)))


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class ConfigError(Exception):
    """Configuration is invalid; `errors` lists (key path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in errors))
