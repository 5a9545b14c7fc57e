"""Closed-loop HTTP load for e2e tests: N client threads posting chat requests until told to stop,
each outcome recorded with the moment its answer arrived."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class Outcome:
    url: str
    status: int | None
    """HTTP status, None when the connection failed (no answer)."""
    request_id: str | None
    received: float
    """time.time() when the answer (or the failure) arrived."""
    error: str | None = None
    body: Any = None


@dataclass
class Load:
    urls: Sequence[str]
    body: Callable[[int], dict[str, Any]]
    clients: int = 8
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> Load:
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(self.urls[i % len(self.urls)],), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self.outcomes

    def run_for(self, seconds: float) -> list[Outcome]:
        self.start()
        time.sleep(seconds)
        return self.stop()

    def _client(self, url: str) -> None:
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
            while not self._stop.is_set():
                n = next(self._counter)
                try:
                    r = client.post(url + "/v1/chat/completions", json=self.body(n))
                    body = (
                        r.json() if r.headers.get("content-type", "").startswith("application/json") else None
                    )
                    outcome = Outcome(url, r.status_code, r.headers.get("x-thrifty-request-id"), time.time(),
                                      body=body)  # fmt: skip
                except httpx.HTTPError as exc:
                    outcome = Outcome(url, None, None, time.time(), error=type(exc).__name__)
                with self._lock:
                    self.outcomes.append(outcome)

    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200]

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]
