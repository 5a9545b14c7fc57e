"""The compress stage keeps CPU work off the event loop: worker threads, a bounded number of slots, a
time budget, the small-prompt fast path and the per-message size guard.

The slow compressions here are the real extractor held on a `threading.Event` that only the event loop
can set, so "the loop stayed free" is shown by the loop having set it, not by a wall-clock figure.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config, ledger_rows
from thrifty import config as config_mod
from thrifty.compress.extractive import Extractor
from thrifty.compress.normalize import Normalizer
from thrifty.compress.prefix import first_unstable
from thrifty.compress.stage import HEADER, SKIPPED, CompressStage
from thrifty.gateway import Gateway

HOLD = "Harbour hold marker"


def rag(tag: str, docs: int = 8) -> str:
    """A prompt of `docs` passages and a question, about 600 characters a passage."""
    parts = [
        f"Document {i + 1}: Harbour log {tag} {i + 1}\n"
        + " ".join(f"Harbour note {tag} {i}.{k}: the cranes on pier {k} were painted grey." for k in range(8))
        for i in range(docs)
    ]
    parts.insert(docs // 2, "Document 0: Lighthouse\nThe Harrow Point lighthouse was first lit in 1894.")
    return (
        "Answer from the documents.\n\n" + "\n\n".join(parts) + "\n\nQuestion: When was the lighthouse lit?"
    )


def gateway(fake: Any, tmp_path: Path, compression: dict[str, Any]) -> Gateway:
    config = base_config(fake)
    config["ledger"] = {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5}
    config["compression"] = compression
    return Gateway(config_mod.parse(config, env={}))


def ask(content: str, model: str = "gpt-4o") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def stage_of(gw: Gateway) -> CompressStage:
    return next(s for s in gw.stages if isinstance(s, CompressStage))


def extract_on(rule: dict[str, Any] | None = None, **cpu: Any) -> dict[str, Any]:
    return {
        "extractive": {"enabled": True, "ratio": 0.4, "min_context_tokens": 50, **(rule or {})},
        "cpu": cpu,
    }


class Held:
    """Patches `Extractor.run` so a prompt carrying `HOLD` waits (in whatever thread runs it) until
    `release` — or 10 s, so a blocked event loop ends the test rather than hanging it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.released_by_loop: bool | None = None
        self.threads: list[str] = []
        real = Extractor.run

        def run(extractor: Extractor, body: Any, budget: Any) -> Any:
            self.threads.append(threading.current_thread().name)
            if HOLD in json.dumps(body):
                self.entered.set()
                self.released_by_loop = self.release.wait(10)
            return real(extractor, body, budget)

        monkeypatch.setattr(Extractor, "run", run)

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10), "the held compression never started"


async def test_a_small_request_is_answered_while_a_large_prompt_compresses(fake, tmp_path, monkeypatch):
    held = Held(monkeypatch)
    async with gateway(fake, tmp_path, extract_on(budget_s=None)) as gw:
        big = asyncio.create_task(gw.chat(ask(rag(HOLD))))
        await held.wait_entered()
        tiny = await gw.chat(ask("hi", model="gpt-4o-mini"))  # the loop answers it meanwhile …
        assert not big.done()
        held.release.set()  # … and only the loop can end the big compression
        result = await big
    assert tiny.body["choices"][0]["message"]["content"] == "echo: hi"
    assert held.released_by_loop is True  # on the loop, the held compression would block it 10 s
    assert held.threads[0].startswith("thrifty-compress")  # the big one; "hi" compressed inline
    before, after = (int(x) for x in result.headers[HEADER].split("->"))
    assert after < 0.6 * before


async def test_small_prompts_compress_inline_and_large_ones_on_a_worker_thread(fake, tmp_path, monkeypatch):
    seen: list[tuple[int, str]] = []
    real = Normalizer.run

    def run(normalizer: Normalizer, body: Any) -> Any:
        seen.append((len(body["messages"][0]["content"]), threading.current_thread().name))
        return real(normalizer, body)

    monkeypatch.setattr(Normalizer, "run", run)
    system = {"role": "system", "content": "Answer from the documents; cite them by number. " * 100}
    async with gateway(fake, tmp_path, extract_on()) as gw:  # inline up to 8,000 characters' work
        await gw.chat(ask("Short   question  about the harbour?"))
        await gw.chat({"model": "gpt-4o", "messages": [system, {"role": "user", "content": "Hi"}]})
        large = await gw.chat(ask(rag("inline")))  # 4,600 characters to extract: 18,400
    here = threading.current_thread().name
    assert [name for _, name in seen[:2]] == [here, here]  # no hop for a few milliseconds of work
    assert seen[2][0] > 2000 and seen[2][1].startswith("thrifty-compress")
    assert HEADER in large.headers


async def test_past_the_budget_the_request_goes_uncompressed_and_the_slot_stays_busy(
    fake, tmp_path, monkeypatch
):
    held = Held(monkeypatch)
    async with gateway(fake, tmp_path, extract_on(threads=1, budget_s=0.3)) as gw:
        stage = stage_of(gw)
        over = asyncio.create_task(gw.chat(ask(rag(HOLD))))
        await held.wait_entered()
        over_result = await over  # its work is still held: sent as written
        busy_result = await gw.chat(ask(rag("second")))  # the one slot is still taken
        held.release.set()
        for _ in range(1000):  # the slot is freed when the held work ends
            if not stage.slots._free.locked():  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.01)
        stage.slots.cpu = stage.slots.cpu.model_copy(update={"budget_s": None})  # no timing below
        again = await gw.chat(ask(rag("second")))
    assert HEADER not in over_result.headers and HEADER not in busy_result.headers
    upstream = [r["body"]["messages"][0]["content"] for r in fake.requests("/v1/chat/completions")]
    assert upstream[:2] == [rag(HOLD), rag("second")]
    assert HEADER in again.headers and len(upstream[2]) < 0.7 * len(rag("second"))
    rows = {r["request_id"]: json.loads(r["meta"]) for r in ledger_rows(tmp_path / "ledger.db", expect=3)}
    assert rows[over_result.request_id][SKIPPED] == "over_budget"
    assert rows[busy_result.request_id][SKIPPED] == "busy"
    assert SKIPPED not in rows[again.request_id]


async def test_a_client_that_leaves_does_not_free_the_slot_before_the_work_ends(fake, tmp_path, monkeypatch):
    held = Held(monkeypatch)
    async with gateway(fake, tmp_path, extract_on(threads=1, budget_s=None)) as gw:
        stage = stage_of(gw)
        gone = asyncio.create_task(gw.chat(ask(rag(HOLD))))
        await held.wait_entered()
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert stage.slots._free is not None and stage.slots._free.locked()  # the thread still works
        held.release.set()
        result = await gw.chat(ask(rag("after")))  # waits for the slot, then compresses
    assert HEADER in result.headers
    assert held.released_by_loop is True
    assert len(fake.requests("/v1/chat/completions")) == 1  # the abandoned request never went upstream


def test_a_user_message_over_the_size_guard_is_sent_whole_and_the_prefix_rule_holds(fake, tmp_path):
    gw = gateway(fake, tmp_path, extract_on({"max_message_chars": 3000}))
    stage = stage_of(gw)
    route = stage.route("gpt-4o")
    assert route is not None
    long, short = rag("long", docs=8), rag("short", docs=4)
    assert len(long) > 3000 > len(short)
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You answer from documents."},
            {"role": "user", "content": long},
            {"role": "assistant", "content": "1894."},
            {"role": "user", "content": short},
        ],
    }

    def run(b: dict[str, Any]) -> dict[str, Any]:
        return stage.run_local(route, b, True)[0]

    out = run(body)["messages"]
    assert out[1] == body["messages"][1]  # whole: too long to cut within the guard
    assert out[3]["content"] != short and "first lit in 1894" in out[3]["content"]
    assert first_unstable(run, body) is None
    alone, report = stage.run_local(route, {"messages": [body["messages"][1]]}, True)
    assert alone["messages"][0] == body["messages"][1] and report[-1].saved == 0
