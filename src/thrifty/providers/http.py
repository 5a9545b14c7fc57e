"""The shared pooled async HTTP client every provider uses."""

from __future__ import annotations

from typing import Any

import aiohttp

from thrifty.config import Timeouts
from thrifty.errors import UpstreamError, UpstreamTimeout


class HttpClient:
    """One aiohttp session per event loop, created on first use and closed with the gateway."""

    def __init__(self, max_connections: int = 512) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=_dumps, auto_decompress=True
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    @staticmethod
    def timeout(t: Timeouts) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, sock_read=t.first_byte)

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> aiohttp.ClientResponse:
        """POST and return the open response (caller reads and releases it). Maps transport errors."""
        try:
            return await self.session().post(url, data=body, headers=headers, timeout=self.timeout(timeouts))
        except TimeoutError as exc:
            raise UpstreamTimeout(_timed_out(exc, url, timeouts)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream connection failed: {type(exc).__name__}") from exc


def _dumps(obj: Any) -> str:
    import orjson

    return orjson.dumps(obj).decode()


def _timed_out(exc: TimeoutError, url: str, t: Timeouts) -> str:
    """Which of the three timeouts ran out before the response headers came."""
    host = _host(url)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"upstream timed out connecting to {host} (connect: {t.connect:g} s)"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"upstream {host} sent no answer within first_byte ({t.first_byte:g} s)"
    return f"upstream {host} did not answer within total ({t.total:g} s)"


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """Read a whole response body, mapping timeouts and dropped connections to upstream errors."""
    try:
        return await response.read()
    except TimeoutError as exc:
        raise UpstreamTimeout("upstream timed out sending its answer") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream connection dropped: {type(exc).__name__}") from exc
    finally:
        response.release()


async def sse_events(response: aiohttp.ClientResponse):
    """Yield (event, data) pairs from a server-sent-event response body."""
    event: str | None = None
    data_lines: list[str] = []
    try:
        async for raw in response.content:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:
                if data_lines:
                    yield event, "\n".join(data_lines)
                event, data_lines = None, []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data_lines.append(value)
        if data_lines:
            yield event, "\n".join(data_lines)
    except TimeoutError as exc:
        if isinstance(exc, aiohttp.SocketTimeoutError):
            raise UpstreamTimeout("upstream stream stalled (no data within first_byte)") from exc
        raise UpstreamTimeout("upstream stream ran past its total timeout") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError(f"upstream stream dropped: {type(exc).__name__}") from exc
    finally:
        response.release()
