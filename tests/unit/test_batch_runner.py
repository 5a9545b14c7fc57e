"""The job runner and its store, without servers: cancels racing the end of a batch, deleted inputs."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from thrifty.batching.jobs import JobRunner, batch_object
from thrifty.batching.settings import JobSettings
from thrifty.batching.store import BatchStore
from thrifty.errors import InvalidRequest
from thrifty.types import Tenant


def jsonl(n: int) -> bytes:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return b"".join(
        orjson.dumps({"custom_id": f"q-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
        + b"\n"
        for i in range(n)
    )


class FailingGateway:
    """Every line fails at once (no await that suspends); `on_line(n)` runs as line n is answered."""

    def __init__(self, on_line: Any = None, delay_s: float = 0.0) -> None:
        self.on_line = on_line
        self.delay_s = delay_s
        self.calls = 0

    async def chat(self, body: dict, tenant: Tenant, *, request_id: str) -> Any:
        self.calls += 1
        if self.on_line is not None:
            self.on_line(self.calls)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        raise InvalidRequest("no such model", status=400)


def new_batch(store: BatchStore, lines: int) -> dict:
    file = store.add_file("default", jsonl(lines), "in.jsonl", "batch")
    return store.add_batch("default", None, batch_object(file["id"], "/v1/chat/completions", "24h", None))


def runner_of(store: BatchStore, gateway: Any) -> JobRunner:
    return JobRunner(gateway, JobSettings(forward=False, concurrency=2, poll_interval_s=0.05), store)


def run(store: BatchStore, gateway: Any, batch_id: str) -> None:
    asyncio.run(runner_of(store, gateway)._execute(batch_id))


def test_a_cancel_accepted_as_the_last_line_is_answered_ends_cancelled(tmp_path):
    store = BatchStore(tmp_path / "b.db")
    batch = new_batch(store, 50)
    accepted: list[dict] = []

    def cancel_at_the_end(n: int) -> None:
        if n == 50:
            accepted.append(store.cancel(batch["id"], "default"))

    run(store, FailingGateway(cancel_at_the_end), batch["id"])
    assert accepted[0]["status"] == "cancelling"
    done = store.batch(batch["id"])
    assert done["status"] == "cancelled" and done["cancelling_at"] == accepted[0]["cancelling_at"]
    assert done["cancelled_at"] is not None and done["completed_at"] is None
    assert done["request_counts"] == {"total": 50, "completed": 0, "failed": 50}
    errors = store.content("default", done["error_file_id"]).splitlines()
    assert [orjson.loads(x)["custom_id"] for x in errors] == [f"q-{i}" for i in range(50)]


def test_a_batch_that_answered_every_line_can_no_longer_be_cancelled(tmp_path):
    store = BatchStore(tmp_path / "b.db")
    batch = new_batch(store, 20)
    run(store, FailingGateway(), batch["id"])
    done = store.batch(batch["id"])
    assert done["status"] == "completed" and done["cancelling_at"] is None
    assert store.cancel(batch["id"], "default")["status"] == "completed"
    assert store.batch(batch["id"])["status"] == "completed"


def test_a_cancel_stops_the_remaining_lines_and_keeps_the_failed_ones(tmp_path):
    store = BatchStore(tmp_path / "b.db")
    batch = new_batch(store, 1000)
    gateway = FailingGateway()
    runner = runner_of(store, gateway)

    def cancel(n: int) -> None:  # what the API does: mark it in the store, tell the runner
        if n == 10:
            store.cancel(batch["id"], "default")
            runner.cancelled(batch["id"])

    gateway.on_line = cancel
    asyncio.run(runner._execute(batch["id"]))
    done = store.batch(batch["id"])
    assert done["status"] == "cancelled" and done["error_file_id"] is not None
    assert gateway.calls <= 11  # the lines already started finish; no new one starts
    assert done["request_counts"] == {"total": 1000, "completed": 0, "failed": gateway.calls}


def test_a_cancel_made_by_another_process_is_learnt_from_the_store(tmp_path):
    store = BatchStore(tmp_path / "b.db")
    batch = new_batch(store, 1000)
    gateway = FailingGateway(lambda n: n == 10 and store.cancel(batch["id"], "default"), delay_s=0.002)
    run(store, gateway, batch["id"])
    done = store.batch(batch["id"])
    assert done["status"] == "cancelled" and done["cancelling_at"] is not None
    assert gateway.calls < 500  # at its next progress write
    assert done["request_counts"]["failed"] == gateway.calls


def test_deleting_the_input_of_an_unfinished_batch_keeps_a_copy_for_it(tmp_path):
    store = BatchStore(tmp_path / "b.db")
    batch = new_batch(store, 3)
    finished = new_batch(store, 2)
    finished["status"] = "completed"
    store.save(finished)
    assert store.delete_file("default", batch["input_file_id"])
    assert store.delete_file("default", finished["input_file_id"])
    assert store.content("default", batch["input_file_id"]) is None
    assert store.input_of(batch["id"]) == jsonl(3)
    assert store.input_of(finished["id"]) is None  # a finished batch needs no copy
    run(store, FailingGateway(), batch["id"])
    done = store.batch(batch["id"])
    assert done["status"] == "completed" and done["request_counts"]["failed"] == 3
    assert store.input_of(batch["id"]) is None  # the copy goes once the batch is done


def test_a_batch_whose_input_is_gone_fails_instead_of_completing_empty(tmp_path):
    store = BatchStore(tmp_path / "b.db")
    batch = new_batch(store, 3)
    store._run("DELETE FROM batch_files WHERE id = ?", (batch["input_file_id"],))  # behind the store's back
    run(store, FailingGateway(), batch["id"])
    done = store.batch(batch["id"])
    assert done["status"] == "failed"
    assert done["errors"]["data"][0]["code"] == "input_file_missing"
