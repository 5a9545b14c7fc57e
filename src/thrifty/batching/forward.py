"""Batch jobs forwarded to a provider's batch API: submit, adopt after a crash, poll, collect.

The lines go upstream with `custom_id`s `r0, r1, …`; every answer that comes back is booked at the
catalog's batch price (`Bookkeeper.ok(..., batch=True)`: the discount is the batching saving) and
charged to the key's budget, out of what the batch holds there (`budget.JobHold`, renewed at every
poll). A batch that ends `cancelled`, `expired` or `failed` upstream returns (and books) the lines the
provider answered before it ended, as OpenAI does. A batch whose key can no longer run it (revoked,
expired, or no longer allowed its model) is cancelled upstream at its next poll; what was answered
before is still booked to the key (that money was spent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from thrifty.batching import budget
from thrifty.batching.lines import Line, batch_error, output_line, parse_lines
from thrifty.batching.progress import Progress
from thrifty.dispatch import answer_text
from thrifty.errors import ThriftyError, UpstreamError
from thrifty.pipeline import Call
from thrifty.providers.batch import BatchResult
from thrifty.providers.table import Deployment
from thrifty.types import Tenant, Usage, new_request_id

if TYPE_CHECKING:
    from thrifty.batching.settings import JobSettings
    from thrifty.batching.store import BatchStore
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.batching")


class Forwarding:
    """The forwarded half of `JobRunner` (which provides the store, progress saves and outputs)."""

    gateway: Gateway
    settings: JobSettings
    store: BatchStore

    def _tenant(self, batch_id: str) -> Tenant:
        raise NotImplementedError

    async def _save(self, body: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _lines(self, body: dict[str, Any], tenant: Tenant) -> list[Line] | None:
        raise NotImplementedError

    async def _store_outputs(
        self,
        body: dict[str, Any],
        tenant: Tenant,
        results: list[tuple[bool, bytes] | None],
        status: str,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        raise NotImplementedError

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
        sent = await budget.capped(self.gateway, self._tenant(body["id"]), [ln.body for ln in lines])
        requests = [(f"r{i}", line) for i, line in enumerate(sent)]  # ids every provider accepts
        upstream: dict[str, Any] = {"model": name, "deployment": dep.key, "batch_id": None}
        self.store.set_upstream(body["id"], upstream)  # submitting: a restart looks for it first
        try:
            upstream["batch_id"] = await client.submit(requests, dep.model, body["id"])
        except UpstreamError:
            self.store.set_upstream(body["id"], None)
            raise
        self.store.set_upstream(body["id"], upstream)
        body.update(status="in_progress", in_progress_at=int(time.time()))
        await self._save(body)
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

    async def _todo(self, body: dict[str, Any], tenant: Tenant) -> list[Line]:
        """The batch's lines not booked yet (all of them until its results are collected)."""
        data = await asyncio.to_thread(self.store.input_of, body["id"])
        if data is None:
            return []
        lines, _ = await asyncio.to_thread(parse_lines, data, body["endpoint"], tenant)
        done = await asyncio.to_thread(self.store.done_lines, body["id"])
        return [line for i, line in enumerate(lines) if i not in done]

    async def _follow(
        self, body: dict[str, Any], upstream: dict[str, Any], hold: budget.JobHold | None = None
    ) -> None:
        dep = self._deployment(upstream)
        client = dep.provider.batch_api()
        tenant = self._tenant(body["id"])
        if hold is None:  # resumed by this process: hold again what is still to be booked
            hold = budget.JobHold(self.gateway, tenant, body["id"], lambda: self._todo(body, tenant))
        cancel_sent = False
        why: list[dict[str, Any]] | None = None
        while True:
            refused = await hold.renew(upstream["model"])
            if refused is not None and why is None:  # the key can no longer run it: cancel upstream
                log.info("batch %s is cancelled: %s", body["id"], refused.message)
                why = [batch_error(refused.code or "key_unusable", f"Cancelled: {refused.message}")]
                await asyncio.to_thread(self.store.cancel, body["id"], tenant.id)
            stored = self.store.batch(body["id"]) or body
            if stored["status"] == "cancelling" and not cancel_sent:
                await client.cancel(upstream["batch_id"])
                cancel_sent = True
            remote = await client.poll(upstream["batch_id"])
            body["request_counts"].update(
                total=remote.total, completed=remote.completed, failed=remote.failed
            )
            if remote.status == "completed":
                # every line is answered upstream: no cancel is accepted while the answers are booked
                await asyncio.to_thread(self.store.finalize, body)
                results = await client.results(upstream["batch_id"])
                await self._collect(body, upstream, dep, results, "completed", hold)
                return
            if remote.status in ("failed", "expired", "cancelled"):
                # as at OpenAI, the lines answered before the end are returned (and booked)
                try:
                    results = await client.results(upstream["batch_id"])
                except (ThriftyError, UpstreamError) as exc:
                    log.warning("batch %s: no partial results from the provider: %s", body["id"], exc)
                    results = []
                await self._collect(body, upstream, dep, results, remote.status, hold, remote.errors or why)
                return
            body["status"] = "cancelling" if cancel_sent else "in_progress"
            await self._save(body)
            await asyncio.sleep(min(self.settings.poll_interval_s, hold.renew_every_s))

    async def _collect(
        self,
        body: dict[str, Any],
        upstream: dict[str, Any],
        dep: Deployment,
        results: list[BatchResult],
        status: str,
        hold: budget.JobHold,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        """Book every answer at batch price (charged to the key out of the batch's hold) and store our
        output and error files, in input order; a line the provider has no result for is an error line
        (`batch_<status>` when the batch ended early)."""
        tenant = self._tenant(body["id"])
        lines = await self._lines(body, tenant)
        if lines is None:
            return
        by_id = {r.custom_id: r for r in results}
        done = await asyncio.to_thread(self.store.done_lines, body["id"])  # booked before a crash
        progress = Progress(self.store, body["id"], done, self.settings.poll_interval_s).start()
        cost = 0.0
        try:
            for i, line in enumerate(lines):
                if i in done:
                    continue
                result = by_id.get(f"r{i}")
                if result is None:
                    missing = _missing(line.custom_id, status)
                    if missing is not None:
                        done[i] = (False, missing)
                elif result.status_code == 200:
                    answer = {**result.body, "model": upstream["model"]}
                    request_id, booked, answer = self._book(body, line, answer, dep, tenant)
                    cost += booked
                    done[i] = (True, output_line(line.custom_id, 200, request_id, answer))
                    progress.add(i, *done[i])
                else:
                    done[i] = (False, output_line(line.custom_id, result.status_code, "", result.body))
                if i % 100 == 99:
                    await hold.charge(cost)
                    cost = 0.0
                await asyncio.sleep(0)  # other requests are served while thousands of lines are booked
            await progress.close()
        except BaseException:
            await progress.abort()
            raise
        finally:
            await hold.charge(cost)
        await self._store_outputs(body, tenant, [done.get(i) for i in range(len(lines))], status, errors)

    def _book(
        self, body: dict[str, Any], line: Line, answer: dict[str, Any], dep: Deployment, tenant: Tenant
    ) -> tuple[str, float, dict[str, Any]]:
        """Book one answered line; returns its request id, its cost and the answer (with usage: counted
        locally, and marked estimated in the ledger, when the provider sent none)."""
        usage = Usage.from_openai(answer.get("usage"))
        if usage is None:
            usage = self.gateway.books.estimate(line.body, answer_text(answer))
            answer = {**answer, "usage": usage.to_openai()}
        call = Call(
            body=line.body,
            original=line.body,
            tenant=tenant,
            request_id=new_request_id(),
            stream=False,
            meta={"batch_id": body["id"], "custom_id": line.custom_id},
        )
        cost = self.gateway.books.ok(call, call.model, dep, usage, latency_ms=0.0, batch=True)
        return call.request_id, cost, answer


def _missing(custom_id: str, status: str) -> bytes | None:
    """The error line of a request the provider returned nothing for (None: no line, as for the
    requests a cancelled batch never started)."""
    if status == "completed":
        error = {"error": {"message": "the provider returned no result for this request"}}
        return output_line(custom_id, 500, "", error)
    if status == "expired":  # as at OpenAI: every request not run in the window is an error line
        error = {
            "error": {
                "code": "batch_expired",
                "message": "This request was not run before the batch expired.",
            }
        }
        return output_line(custom_id, 500, "", error)
    return None
