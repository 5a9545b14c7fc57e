"""Budgets shared by every replica: spent counters and reservations in Redis, changed by Lua scripts
so that checking and booking a reservation is one atomic step across replicas."""

from __future__ import annotations

from thrifty.tenancy.budgets import BudgetBackend, Refusal, Window
from thrifty.tenancy.redis_state import RedisState

# KEYS: reservation zset (id → expiry), reservation hash (id → amount), spent counter per window.
# ARGV: reservation id, amount, ttl seconds, the amount that must fit (usually the amount), then the
# limit of each window.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
end
local reserved = 0
for _, a in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(a) end
local need = tonumber(ARGV[4])
for i = 3, #KEYS do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  local limit = tonumber(ARGV[i + 2])
  if spent + reserved + need > limit then
    return {i - 2, tostring(spent), tostring(reserved)}
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local keep = math.ceil(tonumber(ARGV[3])) + 60
redis.call('EXPIRE', KEYS[1], keep)
redis.call('EXPIRE', KEYS[2], keep)
return {0}
"""

# Adds ARGV[2] to every window counter (KEYS[3:]) and sets its expiry (ARGV[3:], unix seconds, 0 = never).
_ADD_TO_WINDOWS = """
for i = 3, #KEYS do
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[2])
  local expire_at = tonumber(ARGV[i])
  if expire_at > 0 then redis.call('EXPIREAT', KEYS[i], math.floor(expire_at)) end
end
"""

# KEYS as above. ARGV: reservation id, actual cost, then each window's expiry (unix seconds, 0 = never).
_SETTLE = f"""
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
{_ADD_TO_WINDOWS}
return 1
"""

# KEYS: reservation zset, reservation hash. ARGV: reservation id, amount, ttl seconds. Unchecked.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
local keep = math.ceil(tonumber(ARGV[3])) + 60
redis.call('EXPIRE', KEYS[1], keep)
redis.call('EXPIRE', KEYS[2], keep)
return 1
"""

# KEYS as for _SETTLE. ARGV: reservation id, the cost charged, then each window's expiry.
_SETTLE_PART = f"""
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  local left = tonumber(held) - tonumber(ARGV[2])
  if left < 0 then left = 0 end
  redis.call('HSET', KEYS[2], ARGV[1], tostring(left))
end
{_ADD_TO_WINDOWS}
return 1
"""

_RELEASE = """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

_USAGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
local reserved = 0
for _, id in ipairs(live) do reserved = reserved + tonumber(redis.call('HGET', KEYS[2], id) or '0') end
local out = {tostring(reserved)}
for i = 3, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) or '0' end
return out
"""


def _keys(prefix: str, key_id: str, wins: list[Window]) -> list[str]:
    base = f"{prefix}budget:{{{key_id}}}"  # hash tag: one key's counters live on one cluster slot
    return [f"{base}:resv", f"{base}:amounts"] + [f"{base}:{w.name}:{w.bucket}" for w in wins]


class RedisBudgets(BudgetBackend):
    name = "budgets(redis)"

    def __init__(self, state: RedisState, prefix: str = "thrifty:") -> None:
        self.state = state
        self.prefix = prefix
        self._reserve = state.script(_RESERVE)
        self._settle = state.script(_SETTLE)
        self._release = state.script(_RELEASE)
        self._hold = state.script(_HOLD)
        self._settle_part = state.script(_SETTLE_PART)
        self._usage = state.script(_USAGE)

    async def reserve(
        self,
        key_id: str,
        wins: list[Window],
        reservation_id: str,
        amount: float,
        ttl_s: float,
        need: float | None = None,
    ) -> Refusal | None:
        check = amount if need is None else need
        args = [reservation_id, repr(amount), repr(ttl_s), repr(check), *(repr(w.limit) for w in wins)]
        out = await self.state.run(self._reserve, _keys(self.prefix, key_id, wins), args)
        if int(out[0]) == 0:
            return None
        return Refusal(wins[int(out[0]) - 1], float(out[1]), float(out[2]))

    async def settle(self, key_id: str, wins: list[Window], reservation_id: str, actual: float) -> None:
        args = [reservation_id, repr(actual), *(repr(w.expire_at or 0) for w in wins)]
        await self.state.run(self._settle, _keys(self.prefix, key_id, wins), args)

    async def hold(self, key_id: str, reservation_id: str, amount: float, ttl_s: float) -> None:
        args = [reservation_id, repr(amount), repr(ttl_s)]
        await self.state.run(self._hold, _keys(self.prefix, key_id, []), args)

    async def settle_part(self, key_id: str, wins: list[Window], reservation_id: str, actual: float) -> None:
        args = [reservation_id, repr(actual), *(repr(w.expire_at or 0) for w in wins)]
        await self.state.run(self._settle_part, _keys(self.prefix, key_id, wins), args)

    async def release(self, key_id: str, reservation_id: str) -> None:
        await self.state.run(self._release, _keys(self.prefix, key_id, []), [reservation_id])

    async def usage(self, key_id: str, wins: list[Window]) -> dict[str, float]:
        out = await self.state.run(self._usage, _keys(self.prefix, key_id, wins), [])
        usage = {w.name: float(v) for w, v in zip(wins, out[1:], strict=True)}
        usage["reserved"] = float(out[0])
        return usage

    async def ping(self) -> None:
        await self.state.ping()
