"""The hand-off every ledger backend shares: requests append rows to a bounded in-memory deque (no lock,
no thread wake-up on the hot path) and one writer thread drains it in batches.

A backend says only how its writer connects (`_open`) and how one batch is written (`_write`). A failure
to open or write keeps every row and is retried with exponential backoff; `health` (shown in /readyz)
says since when the backend has been failing and how many rows wait. `close` gives a failing backend
`close_timeout_s` from the moment it is called; whatever is still unwritten then is counted as dropped
and logged, also when the writer is stuck in a call that outlasts the deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections import deque
from typing import Any, ClassVar

from thrifty.ledger.base import Ledger, to_row
from thrifty.types import Attempt

log = logging.getLogger("thrifty.ledger")

_BACKOFF_MIN_S = 0.1
_BACKOFF_MAX_S = 5.0


class QueuedLedger(Ledger):
    """Rows wait in a deque bounded by `queue_size` (past it they are dropped and counted, never
    blocking); a writer thread drains it every `flush_interval_ms` in batches of up to `batch_size`.

    The batch being written is held until it is committed: while the backend fails, the batch and the
    deque are kept and retried with exponential backoff (0.1 s … 5 s), so an outage loses nothing until
    the deque is full. After `close`, a failing writer keeps retrying until `close_timeout_s` after the
    call and then counts what it could not write as dropped. A backend bounds how long one open or
    write can block (`join_grace_s` covers it): if the writer is still stuck when that runs out too,
    `close` counts and logs the rows itself — rows are never lost without a count and a log line."""

    backend: ClassVar[str] = "ledger"
    failing: ClassVar[str] = "failing"  # how /readyz words an outage: "unreachable", "unwritable"
    thread_name: ClassVar[str] = "thrifty-ledger"
    join_grace_s: ClassVar[float] = 1.0
    """`close` waits close_timeout_s + this for the writer: at least the longest one open or write of
    the backend can block (a try started just before the deadline), plus a margin."""

    def __init__(
        self, *, batch_size: int, flush_interval_ms: int, queue_size: int, close_timeout_s: float
    ) -> None:
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self.close_timeout_s = close_timeout_s
        self._capacity = queue_size
        self._pending: deque[tuple[Any, ...]] = deque()
        self._held: list[tuple[Any, ...]] = []
        self._waiters: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._lock = threading.Lock()
        self._error: str | None = None
        self._error_since: float | None = None
        self._try_started = time.monotonic()  # when the writer's current (or last) try began
        self._stop_deadline: float | None = None  # set by close: the writer gives up at this time
        self._stopped_by: str | None = None

    # ---- what a backend provides

    @abstractmethod
    def _open(self) -> Any:
        """A connection for the writer thread."""

    @abstractmethod
    def _write(self, conn: Any, batch: list[tuple[Any, ...]]) -> None:
        """Commit one batch of rows (in COLUMNS order); raise to have the batch kept and retried."""

    def _failed(self, exc: Exception, delay: float) -> float:
        """Opening or writing raised `exc` (`delay` is the wait before this try, 0 at first): keep
        everything and return how long to wait before trying again; /readyz shows the outage."""
        backoff = min(_BACKOFF_MAX_S, max(_BACKOFF_MIN_S, delay * 2))
        if self._error is None:  # the outage began when the failed try did (it may have blocked)
            self._error_since = self._try_started
        self._error = type(exc).__name__
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        log.warning(
            "ledger: %s write failed (%s: %s); %d rows kept, retrying in %.1fs",
            self.backend, type(exc).__name__, first_line, self.waiting, backoff,
        )  # fmt: skip
        return backoff

    def _recovered(self) -> None:
        """Everything pending was written (after a failure, or as usual)."""
        if self._error is not None:
            log.warning("ledger: %s writable again; buffered rows written", self.backend)
        self._error = None
        self._error_since = None

    def _usable(self, conn: Any) -> bool:
        """Whether the writer's connection can be used again."""
        return conn is not None

    # ---- state

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def health(self) -> str:
        if self._error is not None:
            since = time.monotonic() - (self._error_since or time.monotonic())
            text = f"{self.failing} for {since:.0f}s ({self._error}); {self.waiting} rows buffered"
            return text + (f", dropped {self._dropped}" if self._dropped else "")
        if self._stopped_by is not None:
            return f"writer stopped ({self._stopped_by}); {self.waiting} rows not written"
        return super().health

    @property
    def waiting(self) -> int:
        """Rows recorded but not yet committed."""
        return len(self._pending) + len(self._held)

    # ---- the hot path

    def record(self, attempt: Attempt) -> None:
        if len(self._pending) + len(self._held) >= self._capacity:
            self._dropped += 1
            log.error("ledger queue full: row dropped", extra={"request_id": attempt.request_id})
            return
        self._pending.append(to_row(attempt))

    # ---- lifecycle

    async def start(self) -> None:
        self.start_sync()

    def start_sync(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._stop_deadline = None
                self._stopped_by = None
                self._thread = threading.Thread(target=self._writer, name=self.thread_name, daemon=True)
                self._thread.start()

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every row recorded before this call is committed (or `timeout` passes)."""
        if self._thread is None or not self._thread.is_alive():
            return
        event = threading.Event()
        self._waiters.append(event)
        self._wake.set()
        event.wait(timeout)

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        """Stop the writer once everything recorded is written, or `close_timeout_s` from now while the
        backend fails; what is still unwritten then is counted as dropped and logged."""
        if self.waiting and (self._thread is None or not self._thread.is_alive()):
            self.start_sync()  # a writer that never started, or died of a defect: one more go
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._stop_deadline = time.monotonic() + self.close_timeout_s
            self._stopping = True
            self._wake.set()
            waited = self.close_timeout_s + self.join_grace_s
            thread.join(timeout=waited)
            if thread.is_alive():  # stuck in one open or write past the deadline
                self._lose(f"writer still blocked {waited:.0f}s after close")
        if self.waiting:  # the writer died with rows in hand, or rows came after its last write
            self._lose(f"writer stopped ({self._stopped_by})" if self._stopped_by else "rows after close")
        self._thread = None

    # ---- the writer thread

    def _writer(self) -> None:
        try:
            self._write_until_stopped()
        except BaseException as exc:  # a defect: say so in /readyz rather than lose rows silently
            self._stopped_by = type(exc).__name__
            log.exception("ledger: the %s writer stopped; %d rows not written", self.backend, self.waiting)
            raise

    def _write_until_stopped(self) -> None:
        conn: Any = None
        delay = 0.0
        try:
            while True:
                self._wake.wait(self._until_next_try(delay))
                self._wake.clear()
                stopping = self._stopping
                waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
                self._try_started = time.monotonic()
                try:
                    if not self._usable(conn):
                        conn = self._open_fresh(conn)
                    self._drain(conn)
                except Exception as exc:
                    conn = _discard(conn)
                    self._waiters.extendleft(reversed(waiters))  # flush() waits on
                    delay = self._failed(exc, delay)
                    if self._past_stop_deadline():
                        self._give_up()
                        return
                    continue
                delay = 0.0
                self._recovered()
                for event in waiters:
                    event.set()
                if stopping and not self._pending:
                    return
        finally:
            _discard(conn)

    def _open_fresh(self, old: Any) -> Any:
        """A new writer connection; the old one (unusable) is closed first."""
        _discard(old)
        return self._open()

    def _until_next_try(self, delay: float) -> float:
        """How long to sleep before the next try: the flush interval, or the backoff after a failure
        (never past the stop deadline, so the last try is made before it)."""
        wait = delay or self.flush_interval
        if self._stop_deadline is not None:
            wait = max(0.0, min(wait, self._stop_deadline - time.monotonic()))
        return wait

    def _past_stop_deadline(self) -> bool:
        return self._stopping and self._stop_deadline is not None and time.monotonic() >= self._stop_deadline

    def _drain(self, conn: Any) -> None:
        """Write the held batch, then everything pending now, in batches of up to batch_size."""
        while self._held or self._pending:
            if not self._held:
                take = min(self.batch_size, len(self._pending))
                self._held = [self._pending.popleft() for _ in range(take)]
            self._write(conn, self._held)
            self._held = []

    def _give_up(self) -> None:
        self._lose(f"still {self.failing} at shutdown")

    def _lose(self, why: str) -> None:
        """Count every row still waiting as dropped and log the number (once: the writer giving up and
        `close` timing out on it may race)."""
        with self._lock:
            lost = self.waiting
            if not lost:
                return
            self._dropped += lost
            self._pending = deque()  # the writer, if it still runs, finds nothing more to write
            self._held = []
        log.error("ledger: %s %s: %d rows lost", self.backend, why, lost)


def _discard(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as exc:  # already broken
            log.debug("ledger: closing a broken connection: %s", exc)
    return None
