"""A circuit breaker per deployment: skip a dead deployment quickly and probe it back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class _State:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Breaker:
    """Opens after `threshold` consecutive failures; after `cooldown` lets one probe through."""

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._states: dict[str, _State] = {}

    def state(self, key: str) -> str:
        st = self._states.get(key)
        if st is None or st.opened_at is None:
            return CLOSED
        if self._clock() - st.opened_at >= self.cooldown:
            return HALF_OPEN
        return OPEN

    def allow(self, key: str) -> bool:
        """Whether a call may go to `key` now. In half-open state only one probe is let through."""
        state = self.state(key)
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        st = self._states[key]
        if st.probing:
            return False
        st.probing = True
        return True

    def success(self, key: str) -> None:
        st = self._states.get(key)
        if st is not None:
            st.failures, st.opened_at, st.probing = 0, None, False

    def release(self, key: str) -> None:
        """A call ended without a verdict on the deployment (the request was bad, or was cancelled):
        a half-open probe may be sent again; the failure count is unchanged."""
        st = self._states.get(key)
        if st is not None:
            st.probing = False

    def failure(self, key: str) -> None:
        st = self._states.setdefault(key, _State())
        st.failures += 1
        if st.probing or st.failures >= self.threshold:
            st.opened_at = self._clock()
        st.probing = False

    def states(self) -> dict[str, str]:
        return {key: self.state(key) for key in self._states}
