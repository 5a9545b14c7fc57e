"""ChildSupervisor against real child processes (python's http.server and a process that dies)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import httpx
import pytest

from thrifty.providers.supervisor import ChildSpec, ChildSupervisor, ChildUnavailable


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


def spec(command, **kw) -> ChildSpec:
    fast = dict(
        ready_path="/",
        live_path="/",
        ready_timeout_s=20.0,
        health_interval_s=0.2,
        health_timeout_s=1.0,
        backoff_base_s=0.2,
        backoff_max_s=1.0,
        stop_timeout_s=2.0,
    )
    return ChildSpec(command=command, **{**fast, **kw})


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def get(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(url, timeout=5)).status_code


async def test_starts_serves_and_stops():
    sup = ChildSupervisor("http", spec(http_server))
    url = await sup.wait_ready(20)
    assert sup.state == "ready" and url == f"http://127.0.0.1:{sup.port}"
    assert await get(url + "/") == 200
    pid = sup.pid
    assert pid is not None and alive(pid)
    await sup.stop()
    assert sup.state == "stopped" and sup.pid is None and not alive(pid)
    with pytest.raises(ChildUnavailable, match="stopped"):
        await sup.wait_ready(1)


async def test_killed_child_is_restarted_at_once_on_the_same_port():
    sup = ChildSupervisor("http", spec(http_server))
    try:
        url = await sup.wait_ready(20)
        old_pid, port = sup.pid, sup.port
        os.kill(old_pid, signal.SIGKILL)
        for _ in range(200):  # the supervisor sees the exit and starts a new child
            if sup.restarts == 1:
                break
            await asyncio.sleep(0.02)
        assert sup.restarts == 1 and "exited with code -9" in (sup.last_error or "")
        assert await sup.wait_ready(20) == url
        assert sup.pid not in (None, old_pid) and sup.port == port
        assert await get(url + "/") == 200
    finally:
        await sup.stop()


async def test_child_that_cannot_start_backs_off_and_fails_fast():
    def crash(port: int) -> list[str]:
        return [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]

    sup = ChildSupervisor("crasher", spec(crash, backoff_base_s=2.0, backoff_max_s=8.0))
    try:
        started = time.monotonic()
        with pytest.raises(ChildUnavailable, match="exited with code 3"):
            await sup.wait_ready(60)  # the start failed: say so instead of waiting for the next try
        assert time.monotonic() - started < 10
        assert sup.state == "backoff" and sup.restarts == 1
        assert "boom" in sup.log_tail()
        with pytest.raises(ChildUnavailable, match="next restart in"):
            await sup.wait_ready(60)  # still backing off: fail at once
        assert time.monotonic() - started < 10
        for _ in range(300):  # it keeps trying, each time waiting longer
            if sup.restarts >= 2:
                break
            await asyncio.sleep(0.02)
        assert sup.restarts >= 2
    finally:
        await sup.stop()


async def test_unhealthy_child_is_never_ready():
    sup = ChildSupervisor(
        "http", spec(http_server, ready_path="/missing", ready_timeout_s=0.5, backoff_base_s=5.0)
    )
    try:
        with pytest.raises(ChildUnavailable, match="no healthy answer"):
            await sup.wait_ready(3)
    finally:
        await sup.stop()
    assert sup.pid is None


async def test_liveness_failures_restart_a_hung_child():
    # the child answers the readiness path, then a liveness path it never serves: it counts as hung
    sup = ChildSupervisor(
        "http", spec(http_server, live_path="/missing", health_failures=2, unhealthy_after_s=0.6)
    )
    try:
        await sup.wait_ready(20)
        first, ready_at = sup.pid, time.monotonic()
        for _ in range(300):
            if sup.restarts >= 1:
                break
            await asyncio.sleep(0.02)
        assert sup.restarts >= 1 and "health checks" in (sup.last_error or "")
        assert not alive(first)
        assert time.monotonic() - ready_at >= 0.6  # not before it was silent that long
    finally:
        await sup.stop()
