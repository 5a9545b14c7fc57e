"""Provider batch APIs through `thrifty serve`: the official openai SDK's Files + Batches workflow,
forwarded to the fake provider's batch API (booked at batch prices) or run through the gateway when
the provider has none; plus the `thrifty batch` CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import openai
import orjson
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty.pricing.catalog import Catalog
from thrifty.testing.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e
CATALOG = Catalog.bundled()


def jsonl(model: str, questions: list[str]) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"q-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": q}]},
            }
        )
        + b"\n"
        for i, q in enumerate(questions)
    )


def config(fake, **jobs) -> dict:
    data = base_config(fake)
    data["batching"] = {"jobs": {"poll_interval_s": 0.05, **jobs}}
    return data


def sdk(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)


def wait_done(client: openai.OpenAI, batch_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch, seen
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still {seen}")


def output(client: openai.OpenAI, file_id: str) -> dict[str, dict]:
    lines = [orjson.loads(x) for x in client.files.content(file_id).content.splitlines() if x.strip()]
    return {line["custom_id"]: line for line in lines}


def test_sdk_batch_lifecycle_forwarded_to_the_provider_at_batch_prices(gateway_factory, fake):
    gw = gateway_factory(config(fake))
    client = sdk(gw)
    questions = ["What is a batch?", "Why is it cheaper?", "When do I get results?"]
    uploaded = client.files.create(file=("in.jsonl", jsonl("gpt-4o-mini", questions)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"job": "nightly"},
    )  # fmt: skip
    assert batch.status == "validating" and batch.metadata == {"job": "nightly"}
    done, statuses = wait_done(client, batch.id)
    assert done.status == "completed" and statuses[-1] == "completed"
    assert done.request_counts.total == 3 and done.request_counts.completed == 3
    answers = output(client, done.output_file_id)
    assert sorted(answers) == ["q-0", "q-1", "q-2"]
    for i, q in enumerate(questions):
        body = answers[f"q-{i}"]["response"]["body"]
        assert answers[f"q-{i}"]["response"]["status_code"] == 200
        assert body["choices"][0]["message"]["content"] == f"echo: {q}"
        assert body["model"] == "gpt-4o-mini"
    assert batch.id in [b.id for b in client.batches.list(limit=10).data]
    # forwarded: the fake provider got a file upload and a batch, no chat completions
    assert len(fake.requests("/v1/files")) == 1 and len(fake.requests("/v1/batches")) == 1
    assert fake.requests("/v1/chat/completions") == []
    rows = ledger_rows(gw.ledger_path, expect=3)
    assert len(rows) == 3
    price = CATALOG.get("gpt-4o-mini")
    for row in rows:
        full = (row["input_tokens"] * price.input + row["output_tokens"] * price.output) / 1e6
        assert row["cost_usd"] == pytest.approx(full * price.batch)
        assert row["saved_batching"] == pytest.approx(full * (1 - price.batch))
        assert row["baseline_cost_usd"] == pytest.approx(full)
        assert orjson.loads(row["meta"])["batch_id"] == batch.id


def test_anthropic_message_batches_forwarded_at_batch_prices(gateway_factory, fake):
    gw = gateway_factory(config(fake))
    client = sdk(gw)
    uploaded = client.files.create(file=("in.jsonl", jsonl("claude-sonnet-4-5", ["a", "b"])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done, _ = wait_done(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 2
    answers = output(client, done.output_file_id)
    bodies = [answers[k]["response"]["body"] for k in ("q-0", "q-1")]
    assert [b["choices"][0]["message"]["content"] for b in bodies] == ["echo: a", "echo: b"]
    assert {b["model"] for b in bodies} == {"claude-sonnet-4-5"}
    (sent,) = [r["body"] for r in fake.requests("/v1/messages/batches")]
    assert [r["custom_id"] for r in sent["requests"]] == ["r0", "r1"]
    assert sent["requests"][0]["params"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}]}
    ]
    assert fake.requests("/v1/messages") == []
    price = CATALOG.get("claude-sonnet-4-5")
    rows = ledger_rows(gw.ledger_path, expect=2)
    assert len(rows) == 2
    for row in rows:
        full = (row["input_tokens"] * price.input + row["output_tokens"] * price.output) / 1e6
        assert row["cost_usd"] == pytest.approx(full * price.batch)
        assert row["saved_batching"] == pytest.approx(full * (1 - price.batch))


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gpt-4o-mini"])
def test_a_batch_answer_without_usage_is_counted_locally_not_booked_free(gateway_factory, fake, model):
    gw = gateway_factory(config(fake))
    client = sdk(gw)
    fake.script({"omit_usage": True}, model=model)
    uploaded = client.files.create(
        file=("in.jsonl", jsonl(model, ["how long is a piece of string"])), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done, _ = wait_done(client, batch.id)
    answer = output(client, done.output_file_id)["q-0"]["response"]["body"]
    assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0
    (row,) = ledger_rows(gw.ledger_path, expect=1)
    assert row["estimated"] == 1 and row["cost_usd"] > 0
    assert row["output_tokens"] == answer["usage"]["completion_tokens"]


def test_provider_without_a_batch_api_runs_through_the_gateway(gateway_factory, fake):
    with FakeProvider(batch_api=False) as plain:
        data = config(fake)
        data["providers"]["plain"] = {"type": "openai", "base_url": plain.openai_base_url, "api_key": "k"}
        data["models"]["plain-mini"] = {"price": "gpt-4o-mini", "deployments": [{"provider": "plain"}]}
        gw = gateway_factory(data)
        client = sdk(gw)
        uploaded = client.files.create(file=("in.jsonl", jsonl("plain-mini", ["a", "b"])), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done, _ = wait_done(client, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 2
        answers = output(client, done.output_file_id)
        assert [
            answers[k]["response"]["body"]["choices"][0]["message"]["content"] for k in ("q-0", "q-1")
        ] == [
            "echo: a",
            "echo: b",
        ]
        assert len(plain.requests("/v1/chat/completions")) == 2  # /v1/files was a 404: ran the lines
    rows = ledger_rows(gw.ledger_path, expect=2)
    assert all(r["saved_batching"] == 0 and r["cost_usd"] > 0 for r in rows)  # no provider discount


def test_bad_files_and_batches_get_clear_errors(gateway_factory, fake):
    gw = gateway_factory(config(fake))
    client = sdk(gw)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("in.jsonl", b"{}"), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):  # as files.retrieve of the same id
        client.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    good = client.files.create(file=("in.jsonl", jsonl("gpt-4o-mini", ["x"])), purpose="batch")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=good.id, endpoint="/v1/embeddings", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    bad_lines = jsonl("gpt-4o-mini", ["x"]) + b"not json\n" + jsonl("gpt-4o-mini", ["dup"])
    bad = client.files.create(file=("bad.jsonl", bad_lines), purpose="batch")
    failed = client.batches.create(
        input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert failed.status == "failed"
    assert {e.code for e in failed.errors.data} == {"invalid_json_line", "duplicate_custom_id"}
    assert [e.line for e in failed.errors.data] == [2, 3]
    r = httpx.post(gw.base_url + "/files", content=b"garbage", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and r.json()["error"]["param"] in ("file", "purpose")
    assert fake.requests("/v1/batches") == []


def test_cancel_a_running_batch(gateway_factory, fake):
    gw = gateway_factory(config(fake, poll_interval_s=1.0))
    client = sdk(gw)
    uploaded = client.files.create(file=("in.jsonl", jsonl("gpt-4o-mini", ["slow"])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done, _ = wait_done(client, batch.id)
    assert done.status == "cancelled" and done.output_file_id is None
    with pytest.raises(openai.BadRequestError):
        client.batches.cancel(batch.id)
    assert ledger_rows(gw.ledger_path, timeout=0.5) == []


def test_cli_submit_status_results(gateway_factory, fake, tmp_path):
    gw = gateway_factory(config(fake))
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(jsonl("gpt-4o-mini", ["one", "two"]))

    def cli(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "thrifty.cli", "batch", *args, "--url", gw.base_url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    submitted = cli("submit", str(path))
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip()
    assert batch_id.startswith("batch_")
    deadline = time.monotonic() + 30
    while "completed" not in (status := cli("status", batch_id)).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "completed  2/2 done, 0 failed" in status.stdout
    results = cli("results", batch_id)
    lines = [orjson.loads(x) for x in results.stdout.splitlines()]
    assert [x["response"]["body"]["choices"][0]["message"]["content"] for x in lines] == [
        "echo: one",
        "echo: two",
    ]
    missing = cli("status", "batch_nope")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_a_killed_gateway_resumes_its_forwarded_batch_on_restart(gateway_factory, fake):
    first = gateway_factory(config(fake, poll_interval_s=30.0))
    client = sdk(first)
    uploaded = client.files.create(file=("in.jsonl", jsonl("gpt-4o-mini", ["survive"])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 20
    while client.batches.retrieve(batch.id).status != "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake.requests("/v1/batches")) == 1  # submitted upstream, now waiting for its next poll
    first.stop(signal.SIGKILL)
    second = gateway_factory(config(fake))  # same directory: same ledger and batch store
    done, _ = wait_done(sdk(second), batch.id)
    assert done.status == "completed"
    assert len(fake.requests("/v1/batches")) == 1  # followed the same upstream batch, not resubmitted
    (row,) = ledger_rows(second.ledger_path, expect=1)
    assert orjson.loads(row["meta"])["batch_id"] == batch.id


def test_a_gateway_killed_while_submitting_adopts_the_batch_the_provider_accepted(gateway_factory, fake):
    """Killed after the provider created the upstream batch but before thrifty stored its id: the
    restarted gateway finds that batch by the job id in its metadata instead of submitting again."""
    fake.batch_api.create_delay_s = 3.0  # the provider creates the batch, then answers slowly
    first = gateway_factory(config(fake, poll_interval_s=0.05))
    client = sdk(first)
    uploaded = client.files.create(file=("in.jsonl", jsonl("gpt-4o-mini", ["adopt me"])), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    def upstream() -> list[dict]:  # the fake keeps other tests' batches too
        tagged = [
            b for b in list(fake.batch_api.batches.values()) if b["metadata"] == {"thrifty_batch": batch.id}
        ]
        return tagged

    deadline = time.monotonic() + 20
    while not upstream():
        assert time.monotonic() < deadline, "the batch was never submitted upstream"
        time.sleep(0.02)
    first.stop(signal.SIGKILL)  # while the provider still holds its answer
    fake.batch_api.create_delay_s = 0.0
    second = gateway_factory(config(fake))  # same directory: same ledger and batch store
    done, _ = wait_done(sdk(second), batch.id)
    assert done.status == "completed" and done.request_counts.completed == 1
    assert len(upstream()) == 1  # adopted, not submitted again
    answers = output(sdk(second), done.output_file_id)
    assert [a["response"]["body"]["choices"][0]["message"]["content"] for a in answers.values()] == [
        "echo: adopt me"
    ]
    (row,) = ledger_rows(second.ledger_path, expect=1)
    assert orjson.loads(row["meta"])["batch_id"] == batch.id


def test_a_killed_gateway_resumes_its_local_batch_without_resending_answered_lines(gateway_factory, fake):
    questions = [f"line {i}" for i in range(6)]
    with FakeProvider(batch_api=False) as plain:
        plain.set_default(latency_ms=400)
        data = config(fake, concurrency=1)
        data["providers"]["plain"] = {"type": "openai", "base_url": plain.openai_base_url, "api_key": "k"}
        data["models"]["plain-mini"] = {"price": "gpt-4o-mini", "deployments": [{"provider": "plain"}]}
        first = gateway_factory(data)
        client = sdk(first)
        uploaded = client.files.create(file=("in.jsonl", jsonl("plain-mini", questions)), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 30
        while client.batches.retrieve(batch.id).request_counts.completed < 2:
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.05)
        first.stop(signal.SIGKILL)
        sent_before = len(plain.requests("/v1/chat/completions"))
        second = gateway_factory(data)  # same directory: same ledger and batch store
        done, _ = wait_done(sdk(second), batch.id)
        assert done.status == "completed" and done.request_counts.completed == 6
        answers = output(sdk(second), done.output_file_id)
        assert {k: v["response"]["body"]["choices"][0]["message"]["content"] for k, v in answers.items()} == {
            f"q-{i}": f"echo: line {i}" for i in range(6)
        }
        # the answered lines were not sent again: only the one in flight at the kill may be resent
        resent = len(plain.requests("/v1/chat/completions")) - sent_before
        assert sent_before >= 2 and sent_before + resent <= 6 + 1
    # every line booked once; the first process's last rows may have died unflushed with it
    rows = ledger_rows(second.ledger_path, expect=6 + 1, timeout=3.0)  # give a 7th row time to show
    assert 6 - 2 <= len(rows) <= 6
