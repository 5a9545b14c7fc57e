"""Budget windows and the BudgetBackend seam; the in-process backend (one replica).

A request reserves its worst-case cost before the provider is called: the reservation succeeds only
if, for every window of the key (UTC day, UTC month, all time), spent + outstanding reservations +
this request's worst case stays within the limit. After the answer the reservation is replaced by the
actual cost (settle), or dropped if the request failed (release). Because the check and the booking of
a reservation are one atomic step, concurrent requests can never together pass a limit by more than
the amount by which one request's actual cost exceeds its estimate.

Long-running work (a batch job) holds its estimate under a reservation id of its own: it renews the
hold while it runs (`hold`, no check: it was admitted already), settles it part by part as its cost is
booked (`settle_part`: what is charged leaves the hold, so it is never counted twice) and releases
what is left when it ends.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from thrifty.tenancy.keys import Budgets


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    """daily | monthly | total"""
    bucket: str
    """Which day / month the counter is for ("all" for total)."""
    limit: float
    expire_at: float | None
    """When the counter can be forgotten (None: never)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    window: Window
    spent: float
    reserved: float


def windows(budgets: Budgets, now: float | None = None) -> list[Window]:
    """The key's budget windows that have a limit, for the moment `now`."""
    moment = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    out = []
    if budgets.daily_usd is not None:
        out.append(
            Window(
                "daily", day.strftime("%Y-%m-%d"), budgets.daily_usd, (day + timedelta(days=2)).timestamp()
            )
        )
    if budgets.monthly_usd is not None:
        expire = (next_month + timedelta(days=1)).timestamp()
        out.append(Window("monthly", month.strftime("%Y-%m"), budgets.monthly_usd, expire))
    if budgets.total_usd is not None:
        out.append(Window("total", "all", budgets.total_usd, None))
    return out


class BudgetBackend(ABC):
    """Where spent amounts and outstanding reservations live. Methods raise StateError when the
    backing store is unreachable."""

    name: str = "budgets"

    @abstractmethod
    async def reserve(
        self,
        key_id: str,
        wins: list[Window],
        reservation_id: str,
        amount: float,
        ttl_s: float,
        need: float | None = None,
    ) -> Refusal | None:
        """Book a reservation of `amount` unless a window would overflow (spent + reserved + `need` >
        limit; `need` defaults to `amount`); return the refusal if so."""

    @abstractmethod
    async def settle(self, key_id: str, wins: list[Window], reservation_id: str, actual: float) -> None:
        """Drop the reservation and add the actual cost to every window."""

    @abstractmethod
    async def hold(self, key_id: str, reservation_id: str, amount: float, ttl_s: float) -> None:
        """Set the reservation to `amount` for another `ttl_s`, unchecked (renews admitted work)."""

    @abstractmethod
    async def settle_part(self, key_id: str, wins: list[Window], reservation_id: str, actual: float) -> None:
        """Add `actual` to every window and take it off the reservation (not below 0), which stays."""

    @abstractmethod
    async def release(self, key_id: str, reservation_id: str) -> None: ...

    @abstractmethod
    async def usage(self, key_id: str, wins: list[Window]) -> dict[str, float]:
        """Spent per window name, plus "reserved"."""

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class MemoryBudgets(BudgetBackend):
    """Counters in this process. Safe under asyncio concurrency: each operation runs without awaiting.
    At start they are loaded from the ledger (`load`), so a restart forgets nothing that was booked."""

    name = "budgets(memory)"

    def __init__(self) -> None:
        self._spent: dict[tuple[str, str, str], float] = {}
        self._reservations: dict[str, dict[str, tuple[float, float]]] = {}

    def _outstanding(self, key_id: str) -> float:
        now = time.monotonic()
        held = self._reservations.get(key_id, {})
        for rid in [r for r, (_, exp) in held.items() if exp <= now]:
            del held[rid]
        return sum(amount for amount, _ in held.values())

    async def reserve(
        self,
        key_id: str,
        wins: list[Window],
        reservation_id: str,
        amount: float,
        ttl_s: float,
        need: float | None = None,
    ) -> Refusal | None:
        reserved = self._outstanding(key_id)
        check = amount if need is None else need
        for win in wins:
            spent = self._spent.get((key_id, win.name, win.bucket), 0.0)
            if spent + reserved + check > win.limit:
                return Refusal(win, spent, reserved)
        self._reservations.setdefault(key_id, {})[reservation_id] = (amount, time.monotonic() + ttl_s)
        return None

    async def settle(self, key_id: str, wins: list[Window], reservation_id: str, actual: float) -> None:
        self._reservations.get(key_id, {}).pop(reservation_id, None)
        self._add(key_id, wins, actual)

    async def hold(self, key_id: str, reservation_id: str, amount: float, ttl_s: float) -> None:
        self._reservations.setdefault(key_id, {})[reservation_id] = (amount, time.monotonic() + ttl_s)

    async def settle_part(self, key_id: str, wins: list[Window], reservation_id: str, actual: float) -> None:
        held = self._reservations.get(key_id, {})
        if reservation_id in held:
            amount, expires = held[reservation_id]
            held[reservation_id] = (max(0.0, amount - actual), expires)
        self._add(key_id, wins, actual)

    def _add(self, key_id: str, wins: list[Window], actual: float) -> None:
        for win in wins:
            slot = (key_id, win.name, win.bucket)
            self._spent[slot] = self._spent.get(slot, 0.0) + actual
        self._forget_old()

    async def release(self, key_id: str, reservation_id: str) -> None:
        self._reservations.get(key_id, {}).pop(reservation_id, None)

    def load(self, spent: dict[str, dict[str, float]], now: float | None = None) -> None:
        """Start from what the ledger says each key spent: {key_id: {"daily"|"monthly"|"total": usd}}."""
        current = {w.name: w.bucket for w in windows(Budgets(1, 1, 1), now)}
        for key_id, sums in spent.items():
            for name, usd in sums.items():
                self._spent[(key_id, name, current[name])] = float(usd or 0.0)

    async def usage(self, key_id: str, wins: list[Window]) -> dict[str, float]:
        out = {win.name: self._spent.get((key_id, win.name, win.bucket), 0.0) for win in wins}
        out["reserved"] = self._outstanding(key_id)
        return out

    def _forget_old(self) -> None:
        """Drop counters of past days and months so memory stays bounded."""
        if len(self._spent) < 10_000:
            return
        current = {(w.name, w.bucket) for w in windows(Budgets(1, 1, 1))}
        for slot in [s for s in self._spent if s[1] != "total" and (s[1], s[2]) not in current]:
            del self._spent[slot]
