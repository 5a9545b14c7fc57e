"""Upstream HTTP: one pool of connections per provider, inside the one client a gateway owns.

Each provider has its own aiohttp session and connector, bounded by `providers.<name>.max_connections`,
so one provider's traffic (say, hundreds of long streams) never holds the connections another provider
needs. A call that finds its provider's connections all busy waits for one for at most the provider's
`timeouts.connect` (which also bounds opening a new one); past that it fails as `PoolSaturated`: the
provider is saturated *by thrifty's own limit*, so the call is booked against that provider and
failed over, but it is no verdict on the provider's health (its circuit breaker is not charged).
"""

from __future__ import annotations

import weakref
from typing import Any

import aiohttp

from thrifty.config import Timeouts
from thrifty.errors import UpstreamError, UpstreamTimeout

DEFAULT_POOL = ""
"""The pool of calls that belong to no provider."""


class PoolSaturated(UpstreamError):
    """Every connection of the provider's pool stayed busy for `timeouts.connect`: the next deployment
    or fallback is tried at once; no retry on this one and no breaker verdict (it is not failing)."""

    status = 503
    code = "provider_saturated"


def client_timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    """`connect` bounds both the wait for a free connection of the pool and opening a new one."""
    return aiohttp.ClientTimeout(
        total=t.total, connect=t.connect, sock_connect=t.connect, sock_read=t.first_byte
    )


class Upstream:
    """One provider's connections: its own session and connector, at most `max_connections` open at
    once; created on first use (in the running event loop) and closed with the gateway.

    To tell a call that waited out `connect` for a free connection from one that could not connect,
    it counts (at no cost worth measuring: no aiohttp tracing on the hot path) the calls waiting for
    response headers and keeps a weak set of the responses it handed out; a response holds its
    connection until its body is read or it is released."""

    def __init__(self, name: str, max_connections: int) -> None:
        self.name = name
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._calling = 0  # calls between sending and their response headers
        self._responses: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=_dumps, auto_decompress=True
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> aiohttp.ClientResponse:
        """POST and return the open response (caller reads and releases it). Maps transport errors."""
        self._calling += 1
        try:
            response = await self.session().post(
                url, data=body, headers=headers, timeout=client_timeout(timeouts)
            )
        except TimeoutError as exc:
            if self._waited_for_a_slot(exc):
                raise self._saturated(timeouts) from exc
            raise UpstreamTimeout(_timed_out(exc, url, timeouts)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"upstream connection failed: {type(exc).__name__}") from exc
        finally:
            self._calling -= 1
        self._responses.add(response)
        return response

    def _waited_for_a_slot(self, exc: TimeoutError) -> bool:
        """Whether a call that timed out (still counted in `_calling`) ran out of `connect` waiting for
        a free connection: the connector makes a call wait only while the other calls hold (or wait
        for) all of them; a timeout with a connection free was the provider's, connecting."""
        if not isinstance(exc, aiohttp.ConnectionTimeoutError):
            return False  # first_byte or total: the provider was slow
        holding = sum(1 for r in self._responses if r.connection is not None)
        return holding + self._calling - 1 >= self.max_connections

    def _saturated(self, t: Timeouts) -> PoolSaturated:
        who = f"provider {self.name!r}" if self.name else "upstream pool"
        return PoolSaturated(
            f"{who} saturated: all {self.max_connections} connections busy for {t.connect:g} s "
            f"(max_connections; timeouts.connect)",
            retryable=False,
        )


class HttpClient:
    """The gateway's upstream HTTP client: one `Upstream` (session + bounded connector) per provider,
    so providers never share connections; `post`/`session` on the client itself use a default pool
    for calls that belong to no provider."""

    def __init__(self, max_connections: int = 1000) -> None:
        self._max_connections = max_connections  # the default pool's bound
        self._upstreams: dict[str, Upstream] = {}

    def upstream(self, name: str, max_connections: int | None = None) -> Upstream:
        """The pool of provider `name` (made on first call, with `max_connections` connections)."""
        found = self._upstreams.get(name)
        if found is None:
            found = Upstream(name, max_connections or self._max_connections)
            self._upstreams[name] = found
        return found

    def session(self) -> aiohttp.ClientSession:
        return self.upstream(DEFAULT_POOL).session()

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> aiohttp.ClientResponse:
        return await self.upstream(DEFAULT_POOL).post(url, body, headers, timeouts)

    async def close(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.close()

    @staticmethod
    def timeout(t: Timeouts) -> aiohttp.ClientTimeout:
        return client_timeout(t)


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
