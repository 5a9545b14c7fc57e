"""Compression through `thrifty serve` in front of the fake provider, with the official openai SDK."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty.pricing.catalog import Catalog
from thrifty.pricing.tokens import TokenCounter

pytestmark = pytest.mark.e2e
COUNTER = TokenCounter()
GPT4O = Catalog.bundled().get("gpt-4o")
FACT = "The Harrow Point lighthouse was first lit on 14 March 1894 by keeper Elias Brandt."
QUESTION = "Question: When was the Harrow Point lighthouse first lit?"


def rag_prompt() -> str:
    docs = []
    for i in range(8):
        sentences = [
            f"Harbour note {i}.{k}: the cranes on pier {k} were repainted in a grey colour." for k in range(6)
        ]
        if i == 5:
            sentences.insert(2, FACT)
        docs.append(f"Document {i + 1}: Harbour log {i + 1}\n" + " ".join(sentences))
    record = json.dumps({"port": "Harrow", "piers": [1, 2, 3], "open": True}, indent=4)
    return "Answer from the documents.\n\n" + "\n\n".join(docs) + f"\n\n{QUESTION}\n\nPort record:\n{record}"


def config(fake, compression):
    data = base_config(fake)
    data["compression"] = compression
    return data


def test_upstream_gets_the_compressed_prompt_and_the_ledger_books_the_saving(gateway_factory, fake):
    gw = gateway_factory(
        config(fake, {"extractive": {"enabled": True, "ratio": 0.4, "min_context_tokens": 50}})
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    prompt = rag_prompt()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": prompt}]
    )
    completion = raw.parse()
    before, after = (int(x) for x in raw.headers["x-thrifty-compressed-tokens"].split("->"))
    assert before == COUNTER.count_messages([{"role": "user", "content": prompt}]) and after < 0.6 * before

    sent = fake.requests("/v1/chat/completions")[-1]["body"]["messages"][0]["content"]
    assert FACT in sent and QUESTION in sent and sent.startswith("Answer from the documents.")
    assert '{"port":"Harrow","piers":[1,2,3],"open":true}' in sent  # normalised, after the question
    assert COUNTER.count_messages([{"role": "user", "content": sent}]) == after
    assert completion.usage.prompt_tokens < 0.6 * before  # what the provider billed

    row = next(
        r for r in ledger_rows(gw.ledger_path, expect=1) if r["request_id"] == raw.headers["x-request-id"]
    )
    billed = completion.usage.prompt_tokens
    original = round(before * billed / after)
    assert row["input_tokens"] == billed
    assert row["saved_compression"] == pytest.approx((original - billed) * GPT4O.input / 1e6, rel=1e-6)
    assert row["baseline_cost_usd"] == pytest.approx(row["cost_usd"] + row["saved_compression"], rel=1e-6)
    meta = json.loads(row["meta"])
    assert meta["compression"]["tokens_before"] == before and meta["compression"]["extractive"] > 0


def test_streamed_requests_are_compressed_too(gateway_factory, fake):
    gw = gateway_factory(
        config(fake, {"extractive": {"enabled": True, "ratio": 0.4, "min_context_tokens": 50}})
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": rag_prompt()}], stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    assert chunks[-1].usage.prompt_tokens < 0.6 * COUNTER.count_text(rag_prompt())
    sent = fake.requests("/v1/chat/completions")[-1]["body"]["messages"][0]["content"]
    assert FACT in sent and len(sent) < 0.6 * len(rag_prompt())
    rows = ledger_rows(gw.ledger_path, expect=1)
    assert rows[-1]["stream"] == 1 and rows[-1]["saved_compression"] > 0


def test_memoised_system_prompt_summary_over_http(gateway_factory, fake):
    system = "You are the Harrow harbour assistant.\n\n" + "\n\n".join(
        f"Rule {i}. Report crane {i} maintenance windows in UTC and never guess schedules you do not know."
        for i in range(60)
    )
    summary = "Harrow harbour assistant: give crane maintenance windows in UTC; never guess."
    fake.script({"content": summary}, model="gpt-4o-mini")
    compression = {"summarize": {"enabled": True, "min_tokens": 300, "target_tokens": 60}}
    gw = gateway_factory(config(fake, compression))  # summary model: the cheapest configured one
    told = {}
    for i in range(3):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": f"Crane {i}?"}]
        r = httpx.post(
            gw.base_url + "/chat/completions", json={"model": "gpt-4o", "messages": messages}, timeout=30
        )
        assert r.status_code == 200, r.text
        told[r.headers["x-request-id"]] = float(r.headers["x-thrifty-cost-usd"])
    upstream = [q["body"] for q in fake.requests("/v1/chat/completions")]
    assert [b["model"] for b in upstream] == ["gpt-4o-mini", "gpt-4o", "gpt-4o", "gpt-4o"]
    assert {b["messages"][0]["content"] for b in upstream[1:]} == {summary}
    rows = ledger_rows(gw.ledger_path, expect=4)
    paid = [r for r in rows if r["kind"] == "compression"]
    assert len(paid) == 1 and paid[0]["cost_usd"] > 0 and paid[0]["served_model"] == "gpt-4o-mini"
    earned = sum(r["saved_compression"] for r in rows if r["final"])
    assert earned > 3 * paid[0]["cost_usd"]
    for request_id, cost in told.items():  # the request that paid for the summary is told so
        booked = sum(r["cost_usd"] for r in rows if r["request_id"] == request_id)
        assert cost == pytest.approx(booked, rel=1e-6)
    assert told[paid[0]["request_id"]] > max(r["cost_usd"] for r in rows if r["final"])


def test_a_request_can_ask_for_less_compression_than_its_route(gateway_factory, fake):
    """`x-thrifty-compress: off` sends the prompt as written; `thrifty.compress: lossless` only
    normalises; a bad value is a 400 naming the header or field, even where nothing compresses."""
    gw = gateway_factory(
        config(fake, {"extractive": {"enabled": True, "ratio": 0.4, "min_context_tokens": 50}})
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    prompt = rag_prompt()
    messages = [{"role": "user", "content": prompt}]

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, extra_headers={"x-thrifty-compress": "off"}
    )
    assert "x-thrifty-compressed-tokens" not in raw.headers
    sent = fake.requests("/v1/chat/completions")[-1]["body"]
    assert sent["messages"][0]["content"] == prompt and "thrifty" not in sent

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, extra_body={"thrifty": {"compress": "lossless"}}
    )
    before, after = (int(x) for x in raw.headers["x-thrifty-compressed-tokens"].split("->"))
    sent = fake.requests("/v1/chat/completions")[-1]["body"]["messages"][0]["content"]
    assert after < before and len(sent) > 0.9 * len(prompt)  # nothing extracted away
    assert '{"port":"Harrow","piers":[1,2,3],"open":true}' in sent  # but normalised

    rows = ledger_rows(gw.ledger_path, expect=2)
    assert [r["saved_compression"] > 0 for r in rows] == [False, True]

    for headers, body, param in (
        ({"x-thrifty-compress": "maybe"}, {}, "x-thrifty-compress"),
        ({}, {"thrifty": {"compress": False}}, "thrifty.compress"),
    ):
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": messages, **body},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    assert len(fake.requests("/v1/chat/completions")) == 2


def test_thrifty_fields_are_validated_where_no_stage_reads_them(gateway_factory, fake):
    gw = gateway_factory(base_config(fake))  # no cache, no compression, no routing
    messages = [{"role": "user", "content": "hi"}]
    for field, value in (("compress", "sometimes"), ("cache", "bogus"), ("task", "juggling")):
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": messages, "thrifty": {field: value}},
            timeout=30,
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == f"thrifty.{field}", r.text
    assert fake.requests("/v1/chat/completions") == []


def test_a_cache_hit_on_a_compressed_request_books_the_uncompressed_baseline(gateway_factory, fake, tmp_path):
    """Compression runs after the cache: the hit replays an answer to the compressed prompt, but what
    the client's request would have cost without thrifty is still the uncompressed prompt's price."""
    data = config(fake, {"extractive": {"enabled": True, "ratio": 0.4, "min_context_tokens": 50}})
    data["cache"] = {"enabled": True, "path": str(tmp_path / "cache.db")}
    gw = gateway_factory(data)
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": rag_prompt()}]
    for stream in (False, True):  # a stored complete answer, then a stored stream
        miss = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=messages, temperature=0, stream=stream, seed=int(stream)
        )
        if stream:
            list(miss.parse())
        hit = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=messages, temperature=0, stream=stream, seed=int(stream)
        )
        if stream:
            list(hit.parse())
        assert hit.headers["x-thrifty-cache"] == "hit-exact"
        (paid,) = ledger_rows(gw.ledger_path, expect=1, request_id=miss.headers["x-request-id"])
        (free,) = ledger_rows(gw.ledger_path, expect=1, request_id=hit.headers["x-request-id"])
        assert paid["saved_compression"] > 0 and free["cost_usd"] == 0
        assert free["baseline_cost_usd"] == pytest.approx(paid["baseline_cost_usd"], rel=1e-6)
        assert free["saved_cache_exact"] == pytest.approx(free["baseline_cost_usd"], rel=1e-9)


def test_duplicate_removal_is_opt_in_and_never_runs_for_a_lossless_request(gateway_factory, fake):
    chunk = "Pier 4 was rebuilt in 1931 after the storm that took the old timber deck and both cranes."
    prompt = f"{chunk}\n\nThe harbour master keeps the logs.\n\n{chunk}\n\nQuestion: When was pier 4 rebuilt?"
    messages = [{"role": "user", "content": prompt}]
    for normalize, headers, kept in (
        ({}, {}, 2),  # the default normalisation is lossless: both copies arrive
        ({"dedupe": True}, {}, 1),
        ({"dedupe": True}, {"x-thrifty-compress": "lossless"}, 2),
    ):
        gw = gateway_factory(config(fake, {"normalize": normalize}))
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": messages},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        sent = fake.requests("/v1/chat/completions")[-1]["body"]["messages"][0]["content"]
        assert sent.count(chunk) == kept and sent.endswith("Question: When was pier 4 rebuilt?")
        gw.stop()


def test_extraction_never_splices_json_drops_the_code_asked_about_or_cuts_a_whole_text_task(
    gateway_factory, fake
):
    items = [
        {
            "sku": f"SKU-{i:03d}",
            "price": 10 + i,
            "desc": f"Widget {i}. Works with model {i}, packs of {i % 5 + 1}.",
        }
        for i in range(30)
    ]
    notes = " ".join(f"Store note {i}: shelves were restocked on day {i}." for i in range(20))
    catalog = f"Our catalog:\n\n{json.dumps(items, indent=2)}\n\n{notes}\n\nWhat is the price of SKU-017?"
    handlers = (
        f"def handler_{i}(event):\n    return run(event['payload_{i}'], retries={i})\n\n" for i in range(25)
    )
    code = "```python\n" + "".join(handlers) + "```"
    prose = " ".join(f"Note {i}: the deployment on node {i} finished without warnings." for i in range(12))
    debug = f"Please help me debug this.\n\n{prose}\n\n{code}\n\nWhy does handler_7 raise KeyError?"
    letter = [doc.split(":", 1)[1].strip() for doc in rag_prompt().split("\n\n")[1:9]]
    proofread = "Please proofread my report:\n\n" + "\n\n".join(letter) + "\n\nCan you return the full text?"
    gw = gateway_factory(
        config(fake, {"extractive": {"enabled": True, "ratio": 0.5, "min_context_tokens": 50}})
    )
    sent = []
    for prompt in (catalog, debug, proofread):
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        sent.append(fake.requests("/v1/chat/completions")[-1]["body"]["messages"][0]["content"])
    start = sent[0].index("[")
    assert json.JSONDecoder().raw_decode(sent[0], start)[0] == items  # whole, every record its own data
    assert code in sent[1] and "Note 3:" not in sent[1]  # the code asked about, over the ratio
    assert all(p in sent[2] for p in letter)  # a whole-text task is not cut
