"""One Redis client per replica for budget and rate-limit counters, with fast timeouts."""

from __future__ import annotations

from typing import Any

from thrifty.tenancy.errors import StateError


class RedisState:
    """Lazily connected `redis.asyncio` client; Lua scripts registered on it. Failures raise StateError."""

    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis.asyncio as redis

            self._client = redis.Redis.from_url(
                self.url,
                socket_connect_timeout=self.timeout_s,
                socket_timeout=self.timeout_s,
                decode_responses=True,
                health_check_interval=30,
            )
        return self._client

    def script(self, source: str) -> Any:
        return self.client.register_script(source)

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        import redis

        try:
            return await script(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StateError(f"redis unreachable: {type(exc).__name__}") from None

    async def call(self, *command: Any) -> Any:
        import redis

        try:
            return await self.client.execute_command(*command)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StateError(f"redis unreachable: {type(exc).__name__}") from None

    async def ping(self) -> None:
        await self.call("PING")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
