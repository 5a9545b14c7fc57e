"""Runs stored batch jobs: forwarded to the provider's batch API, or through the gateway itself.

A job whose lines all name one model served by a provider with an OpenAI-compatible batch API is
uploaded there, polled, and its output downloaded; every answer is booked at the catalog's batch
price (`Bookkeeper.ok(..., batch=True)`: the discount is the batching saving). A provider without a
batch API (or a virtual model, or `forward: false`) runs the lines through the gateway pipeline in
the background, `concurrency` at a time; those are booked like any other request (at the normal
price: no provider discount was had). Cancelling stops the upstream batch or the remaining lines.

Each answered line is recorded in the store right after it is booked (`Progress`: off the event loop,
the lines answered while one write is in flight go together in the next), so a process that resumes
the batch after a crash neither sends nor books it again (at most the lines answered since the last
write are booked twice). A forwarded batch that ends `cancelled`, `expired` or `failed` upstream still
returns and books the lines the provider answered. Budgets and key checks: `thrifty.batching.budget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from thrifty.batching import budget
from thrifty.batching.forward import Forwarding
from thrifty.batching.lines import Line, batch_error, parse_lines
from thrifty.batching.local import run_locally
from thrifty.batching.progress import Progress
from thrifty.batching.settings import JobSettings
from thrifty.batching.store import BatchStore, new_id
from thrifty.errors import UpstreamError
from thrifty.types import Tenant

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.batching")
UPSTREAM_ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


class JobRunner(Forwarding):
    """Claims active batches from the store and drives each to a final state."""

    def __init__(self, gateway: Gateway, settings: JobSettings, store: BatchStore) -> None:
        self.gateway = gateway
        self.settings = settings
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self.progress: dict[str, Progress] = {}
        """The batches running through the gateway in this process."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._release_dead_owners()
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def aclose(self) -> None:
        tasks = [t for t in (self._loop_task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self.store.release(self.owner)  # another process picks them up where they stand

    def _release_dead_owners(self) -> None:
        """Batches owned by a process of this host that is gone (killed, crashed) are picked up again."""
        host = socket.gethostname()
        for owner in self.store.owners():
            name, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            if name == host and pid.isdigit() and not _alive(int(pid)):
                self.store.release(owner)

    def wake(self) -> None:
        self._wake.set()

    def cancelled(self, batch_id: str) -> None:
        """The API accepted a cancel: a batch running here starts no more lines (another process
        learns it from the store at its next progress write)."""
        progress = self.progress.get(batch_id)
        if progress is not None:
            progress.cancelled = True
        self.wake()

    async def _loop(self) -> None:
        while True:
            for batch_id in self.store.claim(self.owner):
                if batch_id not in self._running:
                    task = asyncio.get_running_loop().create_task(self._drive(batch_id))
                    self._running[batch_id] = task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            self._wake.clear()

    async def _drive(self, batch_id: str) -> None:
        try:
            await self._execute(batch_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("batch %s failed", batch_id)
            body = self.store.batch(batch_id)
            if body is not None:
                await self._finish(body, "failed", errors=[batch_error("internal_error", str(exc)[:300])])
        finally:
            self._running.pop(batch_id, None)

    # ------------------------------------------------------------------ one job

    def _tenant(self, batch_id: str) -> Tenant:
        """Whose batch it is (its files and ledger rows). What its key may do is read as each line runs
        (`budget.current`), never from here: a key changes while its batch runs."""
        tenant_id, key_id = self.store.tenant_of(batch_id)
        return Tenant(id=tenant_id, key_id=key_id)

    def forwards(self, lines: list[Line]) -> bool:
        """Whether a job of these lines goes to a provider's batch API (at batch price)."""
        return bool(lines) and self.settings.forward and self._forward_target(lines) is not None

    async def _save(self, body: dict[str, Any]) -> None:
        """Store progress without losing a cancel request that arrived meanwhile."""
        await asyncio.to_thread(self.store.update, body)

    async def _finish(
        self, body: dict[str, Any], status: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        now = int(time.time())
        body["status"] = status
        body[{"completed": "completed_at", "cancelled": "cancelled_at"}.get(status, f"{status}_at")] = now
        if errors:
            body["errors"] = {"object": "list", "data": errors}
        await asyncio.to_thread(self.store.finish, body)
        await budget.release(self.gateway, self._tenant(body["id"]), body["id"])  # what is left of its hold

    async def _lines(self, body: dict[str, Any], tenant: Tenant) -> list[Line] | None:
        """The batch's request lines (from its input file, or the copy it kept when the file was
        deleted); None, with the batch failed, when they cannot be read."""
        data = await asyncio.to_thread(self.store.input_of, body["id"])
        if data is None:
            message = f"The input file {body['input_file_id']} is gone; the batch cannot run."
            await self._finish(body, "failed", errors=[batch_error("input_file_missing", message)])
            return None
        lines, errors = await asyncio.to_thread(parse_lines, data, body["endpoint"], tenant)
        if errors:
            await self._finish(body, "failed", errors=errors)
            return None
        return lines

    async def _execute(self, batch_id: str) -> None:
        body = self.store.batch(batch_id)
        if body is None:
            return
        upstream = self.store.upstream(batch_id)
        if upstream is not None and upstream.get("batch_id") is None:
            upstream = await self._adopt(body, upstream)  # a submission interrupted by a crash
        if upstream is not None:
            await self._follow(body, upstream)
            return
        if body["status"] == "cancelling":
            await self._finish(body, "cancelled")
            return
        tenant = self._tenant(batch_id)
        lines = await self._lines(body, tenant)
        if lines is None:
            return
        body["request_counts"]["total"] = len(lines)
        target = self._forward_target(lines) if self.settings.forward else None
        if target is not None:
            hold = budget.JobHold(self.gateway, tenant, batch_id, lambda: _ready(lines))
            refused = await hold.renew(lines[0].body["model"])
            if refused is not None:  # run through the gateway, where each line gets the key's refusal
                log.info("batch %s not forwarded: %s", batch_id, refused.message)
            else:
                try:
                    upstream = await self._submit(body, lines, *target)
                except UpstreamError as exc:
                    log.info("batch %s runs through the gateway: %s", batch_id, exc.message)
                else:
                    await self._follow(body, upstream, hold)
                    return
        await run_locally(self, body, lines, tenant)

    async def _store_outputs(
        self,
        body: dict[str, Any],
        tenant: Tenant,
        results: list[tuple[bool, bytes] | None],
        status: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write the output file (answered lines) and the error file (failed lines), in input order,
        and end the batch in `status`."""
        ok = [r[1] for r in results if r is not None and r[0]]
        failed = [r[1] for r in results if r is not None and not r[0]]

        def add(lines: list[bytes], suffix: str) -> str:
            name = f"{body['id']}_{suffix}.jsonl"
            return str(self.store.add_file(tenant.id, b"".join(lines), name, "batch_output")["id"])

        if ok:
            body["output_file_id"] = await asyncio.to_thread(add, ok, "output")
        if failed:
            body["error_file_id"] = await asyncio.to_thread(add, failed, "errors")
        body["request_counts"].update(total=len(results), completed=len(ok), failed=len(failed))
        if status == "completed":
            body["finalizing_at"] = body.get("finalizing_at") or int(time.time())
        await self._finish(body, status, errors)


async def _ready(lines: list[Line]) -> list[Line]:
    return lines


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def batch_object(
    input_file_id: str, endpoint: str, window: str, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    """A new OpenAI Batch object in `validating`."""
    now = int(time.time())
    return {
        "id": new_id("batch_"),
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": input_file_id,
        "completion_window": window,
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + 24 * 3600,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
    }
