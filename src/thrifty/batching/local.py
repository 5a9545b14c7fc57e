"""A batch job run through the gateway's own pipeline: `concurrency` workers take the lines in order.

Each worker yields to the event loop after every line, so a batch whose lines fail instantly (no
await that suspends) still lets every other request be served; answered lines are recorded by a
`Progress` writer off the loop. Each line is sent as the key is now (`budget.current`): a model taken
from the key fails its lines with 403, a revoked or expired key with 401, and each line reserves and
settles its own cost in the limits stage (the batch's own hold is released as it starts).

A cancel accepted by the API stops the workers before their next line; the lines that ran are kept
(answers in the output file, failures in the error file). A batch whose every line was answered moves
to `finalizing` first, and a cancel that arrives after that is refused: an accepted cancel always
ends `cancelled`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from thrifty.batching import budget
from thrifty.batching.lines import Line, output_line
from thrifty.batching.progress import Progress
from thrifty.errors import ThriftyError
from thrifty.types import Tenant, new_request_id

if TYPE_CHECKING:
    from thrifty.batching.jobs import JobRunner


async def run_locally(runner: JobRunner, body: dict[str, Any], lines: list[Line], tenant: Tenant) -> None:
    body.update(status="in_progress", in_progress_at=body.get("in_progress_at") or int(time.time()))
    await runner._save(body)
    store, batch_id = runner.store, body["id"]
    await budget.release(runner.gateway, tenant, batch_id)  # its lines reserve for themselves
    done = await asyncio.to_thread(store.done_lines, batch_id)  # answered before a crash: not sent again
    results: list[tuple[bool, bytes] | None] = [done.get(i) for i in range(len(lines))]
    progress = Progress(store, batch_id, done, runner.settings.poll_interval_s)
    progress.cancelled = body["status"] == "cancelling"
    runner.progress[batch_id] = progress
    todo = iter([i for i, r in enumerate(results) if r is None])

    async def worker() -> None:
        for i in todo:
            if progress.cancelled:
                return
            line, request_id = lines[i], new_request_id()
            try:
                now = await budget.current(runner.gateway, tenant)
                result = await runner.gateway.chat(line.body, now, request_id=request_id)
                outcome = (True, output_line(line.custom_id, 200, request_id, result.body))
            except ThriftyError as exc:
                outcome = (False, output_line(line.custom_id, exc.status, request_id, exc.body()))
            results[i] = outcome
            progress.add(i, *outcome)
            await asyncio.sleep(0)  # a line that failed without suspending must not hog the loop

    progress.start()
    try:
        await asyncio.gather(*(worker() for _ in range(runner.settings.concurrency)))
        await progress.close()
    except BaseException:
        await progress.abort()
        raise
    finally:
        runner.progress.pop(batch_id, None)
    finished = not progress.cancelled and all(r is not None for r in results)
    if finished and await asyncio.to_thread(store.finalize, body):
        await runner._store_outputs(body, tenant, results, "completed")
        return
    await runner._store_outputs(body, tenant, results, "cancelled")
