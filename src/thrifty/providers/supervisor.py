"""Supervises one child HTTP server: start it, health-check it, restart it on a crash, stop it.

The child listens on a loopback port the supervisor picks. A monitor task (on the event loop of the
first `start()`) spawns the child, polls `GET {ready_path}` until it answers, then watches both the
process (an exit is seen at once) and its liveness (`health_failures` failed `GET {live_path}` probes
in a row, spanning at least `unhealthy_after_s`, count as a crash). After a crash the child is
restarted; one that crashed young or never came up waits an exponential backoff first. On Linux the
child gets SIGTERM if the supervising thread dies, so a killed gateway leaves no orphan server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

log = logging.getLogger("thrifty.supervisor")

State = Literal["idle", "starting", "ready", "backoff", "stopped"]


class ChildUnavailable(Exception):
    """The child is not serving and will not be within the wait asked for."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    command: Callable[[int], list[str]]
    """The argv that starts the child listening on the given port."""
    ready_path: str = "/v1/models"
    """Probed until it answers 200 before the child is marked ready."""
    live_path: str = "/v1/models"
    """Probed every `health_interval_s` while it runs (pick a path the server answers while busy)."""
    ready_timeout_s: float = 180.0
    """How long a starting child may take to answer its first health probe."""
    health_interval_s: float = 2.0
    health_timeout_s: float = 10.0
    health_failures: int = 3
    unhealthy_after_s: float = 30.0
    """A running child is declared hung only after `health_failures` failed probes in a row AND this
    long without a good one: a model server starved of CPU for a moment is not killed mid-answer."""
    backoff_base_s: float = 2.0
    backoff_max_s: float = 30.0
    stable_after_s: float = 30.0
    """A child that served this long before crashing is restarted at once and resets the backoff."""
    stop_timeout_s: float = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ChildSupervisor:
    """Keeps one child server running; `await wait_ready()` before sending it requests."""

    def __init__(self, name: str, spec: ChildSpec) -> None:
        self.name = name
        self.spec = spec
        self.state: State = "idle"
        self.restarts = 0
        self.last_error: str | None = None
        self.port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._next_attempt = 0.0
        self._session: aiohttp.ClientSession | None = None
        self._log_tail: deque[str] = deque(maxlen=40)
        self._drainer: asyncio.Task[None] | None = None

    # ---- public

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:{port} of the current child (meaningful once `wait_ready` returned)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def log_tail(self) -> str:
        return "\n".join(self._log_tail)

    def start(self) -> None:
        """Start the monitor task (idempotent); must be called on a running event loop."""
        if self.state == "stopped":
            raise ChildUnavailable(f"{self.name} is stopped")
        if self._task is None:
            self._changed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._monitor(), name=f"supervise {self.name}"
            )

    async def wait_ready(self, timeout: float) -> str:
        """Return the child's base URL once it serves.

        Waits (up to `timeout`) while a child is starting; raises ChildUnavailable at once when the
        last start failed and the supervisor is backing off, so callers can fall back instead of waiting.
        """
        self.start()
        deadline = time.monotonic() + timeout
        while self.state != "ready":
            now = time.monotonic()
            if self.state == "stopped":
                raise ChildUnavailable(f"{self.name} is stopped")
            if self.state == "backoff":
                wait = self._next_attempt - now
                raise ChildUnavailable(
                    f"{self.name} is down ({self.last_error}); next restart in {wait:.1f}s"
                )
            if now >= deadline:
                raise ChildUnavailable(f"{self.name} is not ready after {timeout:.1f}s ({self.state})")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), deadline - now)
        return self.base_url

    async def stop(self) -> None:
        """Stop the monitor and the child (SIGTERM, then SIGKILL after `stop_timeout_s`)."""
        self._set("stopped")
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._terminate()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- the monitor

    def _set(self, state: State) -> None:
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def _monitor(self) -> None:
        failures = 0
        while self.state != "stopped":
            started, was_ready = time.monotonic(), False
            try:
                await self._spawn()
                await self._until_healthy()
                self._set("ready")
                was_ready = True
                log.info("%s ready on port %s (pid %s)", self.name, self.port, self.pid)
                await self._watch()
            except ChildUnavailable as exc:
                self.last_error = str(exc)
            if self.state == "stopped":
                return
            await self._terminate()
            if time.monotonic() - started >= self.spec.stable_after_s:
                failures = 0
            failures += 1
            delay = 0.0 if failures == 1 and was_ready else self._backoff(failures)
            log.warning(
                "%s down (%s); restarting in %.1fs. Last output:\n%s",
                self.name,
                self.last_error,
                delay,
                self.log_tail(),
            )
            self.restarts += 1
            if delay > 0:
                self._next_attempt = time.monotonic() + delay
                self._set("backoff")
                await asyncio.sleep(delay)
                self.port = None  # a child that never came up may have lost its port: take a new one

    def _backoff(self, failures: int) -> float:
        return min(self.spec.backoff_max_s, self.spec.backoff_base_s * 2 ** max(failures - 1, 0))

    async def _spawn(self) -> None:
        self._set("starting")
        self.port = self.port or free_port()
        argv = self.spec.command(self.port)
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise ChildUnavailable(f"cannot start {argv[0]}: {exc.strerror}") from None
        self._log_tail.clear()
        self._drainer = asyncio.get_running_loop().create_task(self._drain(self._proc))

    async def _drain(self, proc: asyncio.subprocess.Process) -> None:
        """Keep the child's last output lines (for crash reports) without letting its pipe fill."""
        if proc.stderr is None:
            return
        with contextlib.suppress(Exception):
            async for line in proc.stderr:
                self._log_tail.append(line.decode("utf-8", errors="replace").rstrip())

    async def _probe(self, path: str) -> bool:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.spec.health_timeout_s)
        try:
            async with self._session.get(self.base_url + path, timeout=timeout) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _until_healthy(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.spec.ready_timeout_s
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise ChildUnavailable(f"exited with code {proc.returncode} while starting")
            if await self._probe(self.spec.ready_path):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 0.1)
        raise ChildUnavailable(f"no healthy answer within {self.spec.ready_timeout_s:.0f}s")

    async def _watch(self) -> None:
        """Raise ChildUnavailable when the child exits or fails `health_failures` probes in a row."""
        proc = self._proc
        assert proc is not None
        misses, last_ok = 0, time.monotonic()
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), self.spec.health_interval_s)
            except TimeoutError:
                if await self._probe(self.spec.live_path):
                    misses, last_ok = 0, time.monotonic()
                    continue
                misses += 1
                silent = time.monotonic() - last_ok
                if misses >= self.spec.health_failures and silent >= self.spec.unhealthy_after_s:
                    raise ChildUnavailable(f"failed {misses} health checks over {silent:.0f}s") from None
                continue
            raise ChildUnavailable(f"exited with code {proc.returncode}")

    async def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self.spec.stop_timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
