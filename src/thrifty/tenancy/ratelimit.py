"""Per-key rate limits (requests and tokens per minute) with GCRA, in-process or in Redis.

GCRA keeps one number per limit: the theoretical arrival time (TAT). A limit of L per minute emits
one unit every 60/L seconds and allows a burst of L. A request costing c units passes if
max(TAT, now) + c·60/L − 60 ≤ now; it then moves TAT forward by c·60/L. Requests and tokens are
checked together: either both are booked or neither.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from thrifty.tenancy.redis_state import RedisState

PERIOD_S = 60.0


@dataclass(frozen=True, slots=True)
class Limit:
    kind: str
    """requests | tokens"""
    per_minute: int
    cost: int


@dataclass(frozen=True, slots=True)
class LimitState:
    kind: str
    limit: int
    remaining: int
    reset_s: float
    """Seconds until the limit is fully replenished."""
    retry_after_s: float
    """0 when allowed; else seconds until this request would pass."""


def gcra(tat: float, now: float, lim: Limit) -> tuple[float, LimitState]:
    """(new TAT if allowed, state). Pure: the Lua script computes the same."""
    interval = PERIOD_S / lim.per_minute
    new_tat = max(tat, now) + lim.cost * interval
    allow_at = new_tat - PERIOD_S
    if allow_at > now:
        base = max(tat, now)
        remaining = max(0, math.floor((PERIOD_S - (base - now)) / interval + 1e-9))
        return tat, LimitState(lim.kind, lim.per_minute, remaining, base - now, allow_at - now)
    remaining = max(0, math.floor((PERIOD_S - (new_tat - now)) / interval + 1e-9))
    return new_tat, LimitState(lim.kind, lim.per_minute, remaining, new_tat - now, 0.0)


class RateLimiter(ABC):
    """Methods raise StateError when the backing store is unreachable."""

    name: str = "rate_limits"

    @abstractmethod
    async def acquire(self, key_id: str, limits: list[Limit]) -> list[LimitState]:
        """Book every limit's cost if all pass; the states say which did not (retry_after_s > 0)."""

    @abstractmethod
    async def refund(self, key_id: str, limit: Limit) -> None:
        """Give back `limit.cost` units (e.g. tokens reserved but not used)."""

    async def ping(self) -> None:
        return None


class MemoryRateLimiter(RateLimiter):
    name = "rate_limits(memory)"

    def __init__(self, max_keys: int = 100_000) -> None:
        self._tat: dict[tuple[str, str], float] = {}
        self.max_keys = max_keys

    async def acquire(self, key_id: str, limits: list[Limit]) -> list[LimitState]:
        now = time.monotonic()
        results = []
        for lim in limits:
            new_tat, state = gcra(self._tat.get((key_id, lim.kind), now), now, lim)
            results.append((lim, new_tat, state))
        states = [s for _, _, s in results]
        if any(s.retry_after_s > 0 for s in states):
            return states
        for lim, new_tat, _ in results:
            self._tat[(key_id, lim.kind)] = new_tat
        self._forget_idle(now)
        return states

    async def refund(self, key_id: str, limit: Limit) -> None:
        slot = (key_id, limit.kind)
        if slot in self._tat:
            now = time.monotonic()
            self._tat[slot] = max(now, self._tat[slot] - limit.cost * PERIOD_S / limit.per_minute)

    def _forget_idle(self, now: float) -> None:
        if len(self._tat) > self.max_keys:
            for slot in [s for s, tat in self._tat.items() if tat <= now]:
                del self._tat[slot]


# KEYS: one TAT key per limit. ARGV: period, then (per_minute, cost) per limit.
# Returns per limit: remaining, reset seconds, retry-after seconds (all as strings).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period = tonumber(ARGV[1])
local out, news, denied = {}, {}, false
for i = 1, #KEYS do
  local per_minute = tonumber(ARGV[2 * i])
  local cost = tonumber(ARGV[2 * i + 1])
  local interval = period / per_minute
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  local base = math.max(tat, now)
  local new_tat = base + cost * interval
  local allow_at = new_tat - period
  if allow_at > now then
    denied = true
    local remaining = math.max(0, math.floor((period - (base - now)) / interval + 1e-9))
    out[i] = {tostring(remaining), tostring(base - now), tostring(allow_at - now)}
  else
    news[i] = new_tat
    local remaining = math.max(0, math.floor((period - (new_tat - now)) / interval + 1e-9))
    out[i] = {tostring(remaining), tostring(new_tat - now), '0'}
  end
end
if not denied then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], tostring(news[i]), 'PX', math.ceil((news[i] - now) * 1000) + 1000)
  end
end
return out
"""

# KEYS: the TAT key. ARGV: seconds to move it back.
_REFUND = """
local tat = redis.call('GET', KEYS[1])
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local new_tat = math.max(now, tonumber(tat) - tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return 1
"""


class RedisRateLimiter(RateLimiter):
    name = "rate_limits(redis)"

    def __init__(self, state: RedisState, prefix: str = "thrifty:") -> None:
        self.state = state
        self.prefix = prefix
        self._acquire = state.script(_ACQUIRE)
        self._refund = state.script(_REFUND)

    def _key(self, key_id: str, kind: str) -> str:
        return f"{self.prefix}rl:{{{key_id}}}:{kind}"

    async def acquire(self, key_id: str, limits: list[Limit]) -> list[LimitState]:
        keys = [self._key(key_id, lim.kind) for lim in limits]
        args: list[str] = [repr(PERIOD_S)]
        for lim in limits:
            args += [str(lim.per_minute), str(lim.cost)]
        out = await self.state.run(self._acquire, keys, args)
        return [
            LimitState(lim.kind, lim.per_minute, int(float(r[0])), float(r[1]), float(r[2]))
            for lim, r in zip(limits, out, strict=True)
        ]

    async def refund(self, key_id: str, limit: Limit) -> None:
        seconds = limit.cost * PERIOD_S / limit.per_minute
        await self.state.run(self._refund, [self._key(key_id, limit.kind)], [repr(seconds)])

    async def ping(self) -> None:
        await self.state.ping()
