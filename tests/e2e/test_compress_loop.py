"""`thrifty serve` keeps answering while a large prompt compresses (the work runs on a worker thread).

Timing-robust by construction: nothing is compared with a fixed number of milliseconds. The big
request's own duration is the yardstick — with compression on the event loop, a `/healthz` sent while
it compresses waits for the whole compression (about as long as the big request itself); off the loop
it answers in a small fraction of it, and a tiny chat request sent meanwhile finishes first.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.e2e
WORDS = ["harbour", "crane", "pier", "grey", "paint", "ship", "cargo", "tide", "storm", "keeper",
         "light", "lamp", "rope", "deck", "mast", "sail", "anchor"]  # fmt: skip


def big_prompt(chars: int = 600_000) -> str:
    """Passages of random harbour prose (~1-2 s of extraction on one core as of writing; make it bigger
    if extraction gets much faster than that)."""
    rnd = random.Random(7)
    docs: list[str] = []
    size = 0
    while size < chars:
        sentences = (" ".join(rnd.choice(WORDS) for _ in range(12)).capitalize() + "." for _ in range(8))
        doc = f"Document {len(docs)}: log {len(docs)}\n" + " ".join(sentences)
        docs.append(doc)
        size += len(doc) + 2
    return "Answer from the documents.\n\n" + "\n\n".join(docs) + "\n\nQuestion: when was the lamp lit?"


def test_healthz_and_a_tiny_request_answer_while_a_large_prompt_compresses(gateway_factory, fake):
    config = base_config(fake)
    config["compression"] = {
        "extractive": {"enabled": True, "ratio": 0.5, "max_message_chars": 10_000_000},
        "cpu": {"budget_s": None},  # compress however long it takes: this test is about the loop
    }
    gw = gateway_factory(config)
    prompt = big_prompt()
    done: dict[str, float] = {}
    big: dict[str, httpx.Response] = {}

    def send_big() -> None:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}
        big["response"] = httpx.post(gw.base_url + "/chat/completions", json=body, timeout=600)
        done["big"] = time.perf_counter()

    started = time.perf_counter()
    sender = threading.Thread(target=send_big)
    sender.start()
    time.sleep(0.1)  # the body is uploaded and parsed in milliseconds: from here on it compresses
    probes: list[float] = []
    with httpx.Client(timeout=600) as client:
        sent = time.perf_counter()
        tiny = client.post(
            gw.base_url + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        done["tiny"] = time.perf_counter()
        tiny_s = done["tiny"] - sent
        while sender.is_alive():
            t = time.perf_counter()
            assert client.get(gw.url + "/healthz").status_code == 200
            if sender.is_alive():
                probes.append(time.perf_counter() - t)
            time.sleep(0.02)
    sender.join()

    response = big["response"]
    assert response.status_code == 200 and tiny.status_code == 200
    before, after = (int(x) for x in response.headers["x-thrifty-compressed-tokens"].split("->"))
    assert after < 0.6 * before  # the big prompt really was extracted
    big_s = done["big"] - started
    assert done["tiny"] < done["big"] and tiny_s < 0.5 * big_s, f"tiny: {tiny_s:.2f} s of {big_s:.1f} s"
    assert len(probes) >= 3, f"only {len(probes)} /healthz answers during a {big_s:.1f} s request"
    assert max(probes) < 0.5 * big_s, f"/healthz took {max(probes):.2f} s during a {big_s:.1f} s request"
