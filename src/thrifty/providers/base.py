"""The Provider seam: one chat call, one stream, one embeddings call, in the OpenAI wire shape."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from thrifty.config import ProviderConfig
from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.providers.http import HttpClient
from thrifty.redact import Redactor
from thrifty.types import Body, Usage


@dataclass(slots=True)
class Reply:
    """A provider's complete answer translated to an OpenAI chat.completion body."""

    body: Body
    usage: Usage | None


class Provider(ABC):
    """Translates OpenAI-shaped requests to one provider's API and back, over a shared client in which
    it has its own pool of connections (`upstream`)."""

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient) -> None:
        self.name = name
        self.config = config
        self.http = http
        self.upstream = http.upstream(name, config.max_connections)
        """This provider's own connection pool (`max_connections`) in the shared client."""
        self.redact = Redactor([config.api_key, *config.headers.values()])
        """Scrubs this provider's credentials from text it sent back (error messages)."""

    @abstractmethod
    async def chat(self, body: Body, model: str) -> Reply:
        """Send a non-streaming chat request for upstream `model`."""

    @abstractmethod
    def stream(self, body: Body, model: str) -> AsyncIterator[Body]:
        """Yield OpenAI chat.completion.chunk bodies. Errors before the first chunk are UpstreamError."""

    async def embeddings(self, body: Body, model: str) -> Body:
        raise InvalidRequest(f"provider {self.name!r} does not serve embeddings", param="model")

    def refuse(self, body: Body) -> None:
        """Raise InvalidRequest (naming the parameter) for a request-level field this provider cannot
        express, checked without translating any message; a cascade asks before paying for a tier."""
        return None

    async def aclose(self) -> None:
        """Release anything the provider owns beyond the shared client."""
        return None


def loads_json(raw: bytes, what: str) -> Body:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"upstream sent malformed JSON in {what}") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"upstream sent a non-object {what}")
    return data


def error_from_status(status: int, raw: bytes, retry_after: str | None, provider: str) -> UpstreamError:
    """Map an upstream HTTP error status to an UpstreamError that says whether to retry or fall back."""
    message = _upstream_message(raw)
    seconds = _parse_retry_after(retry_after)
    if status in (400, 413, 422):
        # The request itself is bad: another deployment would refuse it too. Propagate as 400.
        return UpstreamError(
            f"{provider} rejected the request: {message}",
            upstream_status=status,
            retryable=False,
            status=400,
            code="upstream_bad_request",
        )
    retryable = status == 429 or status == 408 or status >= 500
    return UpstreamError(
        f"{provider} returned HTTP {status}: {message}",
        upstream_status=status,
        retryable=retryable,
        retry_after=seconds,
        status=429 if status == 429 else 502,
    )


def _upstream_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    except orjson.JSONDecodeError:
        pass
    return raw[:200].decode("utf-8", errors="replace") or "no body"


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
