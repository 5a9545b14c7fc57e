"""A running batch's progress: answered lines and counts, written to the store off the event loop.

Lines are added in O(1) as they are answered; one writer task writes whatever has accumulated in one
SQLite transaction on a worker thread (so while one write is in flight the next lines queue up and
go together), and learns from the store whether a cancel was accepted meanwhile. The event loop never
waits on SQLite, and a batch of lines that fail instantly costs one write per group, not per line.
"""

from __future__ import annotations

import asyncio
import contextlib

from thrifty.batching.store import BatchStore


class Progress:
    def __init__(
        self, store: BatchStore, batch_id: str, done: dict[int, tuple[bool, bytes]], poll_s: float
    ) -> None:
        self.store = store
        self.batch_id = batch_id
        self.poll_s = min(poll_s, 1.0)
        self.completed = sum(ok for ok, _ in done.values())
        self.failed = len(done) - self.completed
        self.cancelled = False
        """A cancel was accepted: start no more lines."""
        self._pending: list[tuple[int, bool, bytes]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Progress:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def add(self, line: int, ok: bool, output: bytes) -> None:
        self._pending.append((line, ok, output))
        if ok:
            self.completed += 1
        else:
            self.failed += 1
        self._wake.set()

    def counts(self) -> dict[str, int]:
        return {"completed": self.completed, "failed": self.failed}

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            closing = self._closing
            await self.flush()
            if closing and not self._pending:
                return

    async def flush(self) -> None:
        """Write what has accumulated (and look for a cancel even when nothing has)."""
        rows, self._pending = self._pending, []
        status = await asyncio.to_thread(self.store.save_progress, self.batch_id, rows, self.counts())
        if status == "cancelling":
            self.cancelled = True

    async def close(self) -> None:
        """Write everything added so far, then stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
