"""Runs stored batch jobs: forwarded to the provider's batch API, or through the gateway itself.

A job whose lines all name one model served by a provider with an OpenAI-compatible batch API is
uploaded there, polled, and its output downloaded; every answer is booked at the catalog's batch
price (`Bookkeeper.ok(..., batch=True)`: the discount is the batching saving). A provider without a
batch API (or a virtual model, or `forward: false`) runs the lines through the gateway pipeline in
the background, `concurrency` at a time; those are booked like any other request (at the normal
price: no provider discount was had). Cancelling stops the upstream batch or the remaining lines.

Each answered line is recorded in the store as soon as it is booked, so a process that resumes the
batch after a crash neither sends nor books it again (at most the line being booked at the moment of
the crash is booked twice).
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

from thrifty.batching.lines import Line, output_line, parse_lines
from thrifty.batching.settings import JobSettings
from thrifty.batching.store import BatchStore, new_id
from thrifty.errors import ThriftyError, UpstreamError
from thrifty.pipeline import Call
from thrifty.providers.batch import BatchResult
from thrifty.providers.table import Deployment
from thrifty.types import Tenant, Usage, new_request_id

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.batching")
UPSTREAM_ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


class JobRunner:
    """Claims active batches from the store and drives each to a final state."""

    def __init__(self, gateway: Gateway, settings: JobSettings, store: BatchStore) -> None:
        self.gateway = gateway
        self.settings = settings
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}

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
                self._finish(body, "failed", errors=[{"code": "internal_error", "message": str(exc)[:300]}])
        finally:
            self._running.pop(batch_id, None)

    # ------------------------------------------------------------------ one job

    def _tenant(self, batch_id: str) -> Tenant:
        tenant_id, key_id = self.store.tenant_of(batch_id)
        return Tenant(id=tenant_id, key_id=key_id)

    def _save(self, body: dict[str, Any]) -> None:
        """Store progress without losing a cancel request that arrived meanwhile."""
        stored = self.store.batch(body["id"]) or {}
        if stored.get("status") == "cancelling" and body["status"] in ("validating", "in_progress"):
            body.update(status="cancelling", cancelling_at=stored.get("cancelling_at"))
        self.store.save(body)

    def _finish(self, body: dict[str, Any], status: str, errors: list[dict[str, Any]] | None = None) -> None:
        now = int(time.time())
        body["status"] = status
        body[{"completed": "completed_at", "cancelled": "cancelled_at"}.get(status, f"{status}_at")] = now
        if errors:
            body["errors"] = {"object": "list", "data": errors}
        self.store.save(body)

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
            self._finish(body, "cancelled")
            return
        tenant = self._tenant(batch_id)
        data = self.store.content(tenant.id, body["input_file_id"]) or b""
        lines, errors = parse_lines(data, body["endpoint"], tenant)
        if errors:
            self._finish(body, "failed", errors=errors)
            return
        body["request_counts"]["total"] = len(lines)
        target = self._forward_target(lines) if self.settings.forward else None
        if target is not None:
            try:
                upstream = await self._submit(body, lines, *target)
            except UpstreamError as exc:
                log.info("batch %s runs through the gateway: %s", batch_id, exc.message)
            else:
                await self._follow(body, upstream)
                return
        await self._run_locally(body, lines, tenant)

    # ------------------------------------------------------------------ forwarded to the provider

    def _forward_target(self, lines: list[Line]) -> tuple[str, Deployment] | None:
        model = lines[0].body["model"]
        if model not in self.gateway.table:
            return None  # a virtual model (routing) or unknown: the pipeline decides per line
        name, deployment = self.gateway.pool.candidates(model)[0]
        if getattr(deployment.provider, "batch_api", None) is None:
            return None
        return name, deployment

    async def _submit(
        self, body: dict[str, Any], lines: list[Line], name: str, dep: Deployment
    ) -> dict[str, Any]:
        client = dep.provider.batch_api()
        requests = [(f"r{i}", ln.body) for i, ln in enumerate(lines)]  # ids every provider accepts
        upstream: dict[str, Any] = {"model": name, "deployment": dep.key, "batch_id": None}
        self.store.set_upstream(body["id"], upstream)  # submitting: a restart looks for it first
        try:
            upstream["batch_id"] = await client.submit(requests, dep.model, body["id"])
        except UpstreamError:
            self.store.set_upstream(body["id"], None)
            raise
        self.store.set_upstream(body["id"], upstream)
        body.update(status="in_progress", in_progress_at=int(time.time()))
        self._save(body)
        return upstream

    async def _adopt(self, body: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any] | None:
        """After a crash mid-submission: the upstream batch the provider did accept (found by the
        job's id), or None to submit afresh (it never arrived, or the provider cannot tell)."""
        try:
            client = self._deployment(upstream).provider.batch_api()
            found = await client.find(body["id"], since=float(body["created_at"]))
        except (ThriftyError, UpstreamError) as exc:
            log.warning("batch %s: cannot look for its interrupted submission: %s", body["id"], exc)
            found = None
        if found is None:
            self.store.set_upstream(body["id"], None)
            return None
        log.info("batch %s: adopting upstream batch %s submitted before a crash", body["id"], found)
        adopted = {**upstream, "batch_id": found}
        self.store.set_upstream(body["id"], adopted)
        return adopted

    def _deployment(self, upstream: dict[str, Any]) -> Deployment:
        for _, dep in self.gateway.pool.candidates(upstream["model"]):
            if dep.key == upstream["deployment"]:
                return dep
        raise ThriftyError(f"deployment {upstream['deployment']} is no longer configured")

    async def _follow(self, body: dict[str, Any], upstream: dict[str, Any]) -> None:
        dep = self._deployment(upstream)
        client = dep.provider.batch_api()
        cancel_sent = False
        while True:
            stored = self.store.batch(body["id"]) or body
            if stored["status"] == "cancelling" and not cancel_sent:
                await client.cancel(upstream["batch_id"])
                cancel_sent = True
            remote = await client.poll(upstream["batch_id"])
            body["request_counts"].update(
                total=remote.total, completed=remote.completed, failed=remote.failed
            )
            if remote.status == "completed":
                await self._collect(body, upstream, dep, await client.results(upstream["batch_id"]))
                return
            if remote.status in ("failed", "expired", "cancelled"):
                self._finish(body, remote.status, errors=remote.errors or None)
                return
            body["status"] = "cancelling" if cancel_sent else "in_progress"
            self._save(body)
            await asyncio.sleep(self.settings.poll_interval_s)

    async def _collect(
        self, body: dict[str, Any], upstream: dict[str, Any], dep: Deployment, results: list[BatchResult]
    ) -> None:
        """Book every answer at batch price and store our output and error files, in input order."""
        tenant = self._tenant(body["id"])
        data = self.store.content(tenant.id, body["input_file_id"]) or b""
        lines = parse_lines(data, body["endpoint"], tenant)[0]
        by_id = {r.custom_id: r for r in results}
        done = self.store.done_lines(body["id"])  # booked before a crash: not booked again
        for i, line in enumerate(lines):
            if i in done:
                continue
            result = by_id.get(f"r{i}")
            if result is None:
                error = {"error": {"message": "the provider returned no result for this request"}}
                done[i] = (False, output_line(line.custom_id, 500, "", error))
            elif result.status_code == 200:
                answer = {**result.body, "model": upstream["model"]}
                request_id = self._book(body, line, answer, dep, tenant)
                done[i] = (True, output_line(line.custom_id, 200, request_id, answer))
                self.store.save_line(body["id"], i, *done[i])
            else:
                done[i] = (False, output_line(line.custom_id, result.status_code, "", result.body))
        ordered = [done[i] for i in range(len(lines))]
        self._store_outputs(
            body, tenant, [raw for ok, raw in ordered if ok], [raw for ok, raw in ordered if not ok]
        )

    def _book(
        self, body: dict[str, Any], line: Line, answer: dict[str, Any], dep: Deployment, tenant: Tenant
    ) -> str:
        usage = Usage.from_openai(answer.get("usage")) or Usage()
        call = Call(
            body=line.body,
            original=line.body,
            tenant=tenant,
            request_id=new_request_id(),
            stream=False,
            meta={"batch_id": body["id"], "custom_id": line.custom_id},
        )
        self.gateway.books.ok(call, call.model, dep, usage, latency_ms=0.0, batch=True)
        return call.request_id

    def _store_outputs(
        self, body: dict[str, Any], tenant: Tenant, ok: list[bytes], failed: list[bytes]
    ) -> None:
        if ok:
            body["output_file_id"] = self.store.add_file(
                tenant.id, b"".join(ok), f"{body['id']}_output.jsonl", "batch_output"
            )["id"]
        if failed:
            body["error_file_id"] = self.store.add_file(
                tenant.id, b"".join(failed), f"{body['id']}_errors.jsonl", "batch_output"
            )["id"]
        body["request_counts"].update(total=len(ok) + len(failed), completed=len(ok), failed=len(failed))
        body["finalizing_at"] = int(time.time())
        self._finish(body, "completed")
        self.store.drop_lines(body["id"])

    # ------------------------------------------------------------------ through the gateway

    async def _run_locally(self, body: dict[str, Any], lines: list[Line], tenant: Tenant) -> None:
        body.update(status="in_progress", in_progress_at=int(time.time()))
        self._save(body)
        gate = asyncio.Semaphore(self.settings.concurrency)
        done = self.store.done_lines(body["id"])  # answered before a crash: not sent again
        results: list[tuple[bool, bytes] | None] = [done.get(i) for i in range(len(lines))]
        cancelled = False

        async def run(i: int, line: Line) -> None:
            nonlocal cancelled
            if results[i] is not None:
                return
            async with gate:
                if cancelled or body["status"] == "cancelling":
                    cancelled = True
                    return
                request_id = new_request_id()
                try:
                    result = await self.gateway.chat(line.body, tenant, request_id=request_id)
                    outcome = (True, output_line(line.custom_id, 200, request_id, result.body))
                except ThriftyError as exc:
                    outcome = (False, output_line(line.custom_id, exc.status, request_id, exc.body()))
                results[i] = outcome
                self.store.save_line(body["id"], i, *outcome)
                done = [r for r in results if r is not None]
                body["request_counts"].update(
                    completed=sum(ok for ok, _ in done), failed=sum(not ok for ok, _ in done)
                )
                self._save(body)

        await asyncio.gather(*(run(i, ln) for i, ln in enumerate(lines)))
        ok = [raw for r in results if r is not None and r[0] for raw in (r[1],)]
        failed = [raw for r in results if r is not None and not r[0] for raw in (r[1],)]
        if cancelled:
            if ok:
                body["output_file_id"] = self.store.add_file(
                    tenant.id, b"".join(ok), f"{body['id']}_output.jsonl", "batch_output"
                )["id"]
            self._finish(body, "cancelled")
            self.store.drop_lines(body["id"])
            return
        self._store_outputs(body, tenant, ok, failed)


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
