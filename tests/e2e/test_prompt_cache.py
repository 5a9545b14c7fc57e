"""Provider prompt caching through `thrifty serve`: stable prefixes, Anthropic breakpoints, sticky
routing, and the prompt-cache saving in the ledger. The fake provider models the providers' caches
(`FakeProvider(prompt_cache=True)`, see thrifty.testing.fake_prefix_cache)."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from tests.conftest import PROVIDER_SECRET, ledger_rows
from thrifty.pricing.catalog import Catalog
from thrifty.testing.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e
CATALOG = Catalog.bundled()
SYSTEM = "You are the support agent of the Acme hardware store. Be precise and kind.\n\n" + "\n".join(
    f"Policy {i}: items of category {i} may be returned within {i % 30 + 1} days with a receipt."
    for i in range(120)
)  # ~2,000 tokens
ID_SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}}}
TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Find an order by id.",
                                      "parameters": ID_SCHEMA}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order.",
                                      "parameters": ID_SCHEMA}},
]  # fmt: skip


@pytest.fixture(scope="module")
def caching_fakes() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    with FakeProvider(prompt_cache=True) as one, FakeProvider(prompt_cache=True) as two:
        yield one, two


@pytest.fixture
def fakes(caching_fakes):
    for f in caching_fakes:
        f.reset()
    return caching_fakes


def config(one: FakeProvider, two: FakeProvider, prompt_cache: dict | None = None) -> dict:
    def openai_provider(f: FakeProvider) -> dict:
        return {"type": "openai", "base_url": f.openai_base_url, "api_key": PROVIDER_SECRET}

    return {
        "providers": {
            "one": openai_provider(one),
            "two": openai_provider(two),
            "claude": {"type": "anthropic", "base_url": one.anthropic_base_url, "api_key": PROVIDER_SECRET},
        },
        "models": {
            "gpt-4o": {"deployments": [{"provider": "one"}]},
            "pooled": {"price": "gpt-4o", "deployments": [{"provider": "one"}, {"provider": "two"}]},
            "claude-sonnet-4-5": {"deployments": [{"provider": "claude"}]},
        },
        "prompt_cache": prompt_cache or {},
    }


@functools.cache
def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)


def ask(gw, model: str, question: str, *, system: str = SYSTEM, tools=None, history=()):
    client = sdk(gw.base_url)
    messages = [{"role": "system", "content": system}, *history, {"role": "user", "content": question}]
    extra = {"tools": tools} if tools else {}
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, **extra)
    return raw.parse(), raw.headers["x-request-id"]


@pytest.mark.parametrize(
    "compression",
    [{}, {"extractive": {"enabled": True, "ratio": 0.5, "min_context_tokens": 20}}],
    ids=["default", "extractive"],
)
def test_stable_prefix_reaches_the_provider_byte_identical(gateway_factory, fakes, compression):
    one, two = fakes
    gw = gateway_factory({**config(one, two), "compression": compression})
    history = [
        {"role": "user", "content": "Hi, I bought a drill."},
        {"role": "assistant", "content": "Hello!"},
    ]
    ask(gw, "gpt-4o", "Can I   return   it?", tools=TOOLS)
    ask(gw, "gpt-4o", "What about a saw?\n\n\n\nThanks", tools=TOOLS, history=history)
    ask(gw, "gpt-4o", "And paint?", tools=TOOLS, history=history)
    sent = [r["body"] for r in one.requests("/v1/chat/completions")]
    assert len(sent) == 3
    prefixes = {orjson.dumps([b["tools"], b["messages"][0]]) for b in sent}
    assert prefixes == {orjson.dumps([TOOLS, {"role": "system", "content": SYSTEM}])}
    # earlier turns are byte-identical between the two follow-ups as well
    assert sent[1]["messages"][:3] == sent[2]["messages"][:3]


def test_openai_cached_tokens_are_priced_and_booked_as_prompt_cache(gateway_factory, fakes):
    one, two = fakes
    gw = gateway_factory(config(one, two))
    first, _ = ask(gw, "gpt-4o", "Can I return a hammer?")
    second, rid = ask(gw, "gpt-4o", "Can I return a ladder?")
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    (row,) = ledger_rows(gw.ledger_path, expect=1, request_id=rid)
    price = CATALOG.get("gpt-4o")
    prompt, out = second.usage.prompt_tokens, second.usage.completion_tokens
    expected = ((prompt - cached) * price.input + cached * price.cached_input + out * price.output) / 1e6
    assert row["cached_input_tokens"] == cached
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert row["saved_prompt_cache"] == pytest.approx(cached * (price.input - price.cached_input) / 1e6)
    assert row["baseline_cost_usd"] - row["cost_usd"] == pytest.approx(row["saved_prompt_cache"])


def anthropic_sent(fake: FakeProvider) -> list[dict]:
    return [r["body"] for r in fake.requests("/v1/messages")]


def test_anthropic_breakpoints_added_when_long_and_booked(gateway_factory, fakes):
    one, two = fakes
    gw = gateway_factory(config(one, two))
    _, write_rid = ask(gw, "claude-sonnet-4-5", "Can I return a hammer?")
    _, read_rid = ask(gw, "claude-sonnet-4-5", "Can I return a ladder?")
    ask(gw, "claude-sonnet-4-5", "short one", system="Be brief.")
    long1, long2, short = anthropic_sent(one)
    assert long1["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    assert long2["system"] == long1["system"]
    assert short["system"] == "Be brief." and "cache_control" not in orjson.dumps(short).decode()
    price = CATALOG.get("claude-sonnet-4-5")
    (write,) = ledger_rows(gw.ledger_path, expect=1, request_id=write_rid)
    (read,) = ledger_rows(gw.ledger_path, expect=1, request_id=read_rid)
    assert write["cache_write_tokens"] > 1024 and write["cached_input_tokens"] == 0
    # a cache write costs 1.25x input: a negative prompt-cache saving, paid back by the reads
    assert write["saved_prompt_cache"] == pytest.approx(
        -write["cache_write_tokens"] * (price.cache_write - price.input) / 1e6
    )
    assert read["cached_input_tokens"] == write["cache_write_tokens"]
    assert read["saved_prompt_cache"] == pytest.approx(
        read["cached_input_tokens"] * (price.input - price.cached_input) / 1e6
    )
    assert read["saved_prompt_cache"] > -write["saved_prompt_cache"]


def test_anthropic_breakpoints_off_by_config(gateway_factory, fakes):
    one, two = fakes
    gw = gateway_factory(config(one, two, {"auto_breakpoints": False}))
    ask(gw, "claude-sonnet-4-5", "Can I return a hammer?")
    (sent,) = anthropic_sent(one)
    assert sent["system"] == SYSTEM


def test_caller_placed_breakpoints_are_kept_as_given(gateway_factory, fakes):
    one, two = fakes
    gw = gateway_factory(config(one, two))
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM,
                                            "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
            {"role": "user", "content": "q"},
        ],
    }  # fmt: skip
    assert httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30).status_code == 200
    (sent,) = anthropic_sent(one)
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert orjson.dumps(sent).decode().count("cache_control") == 1


def served_by(fakes) -> dict[str, str]:
    """system-prompt tag → fake that got it, for every request logged."""
    out: dict[str, list[str]] = defaultdict(list)
    for name, fake in zip(("one", "two"), fakes, strict=True):
        for r in fake.requests("/v1/chat/completions"):
            out[r["body"]["messages"][0]["content"][:12]].append(name)
    return out


def test_sticky_routing_keeps_a_prefix_on_one_deployment(gateway_factory, fakes):
    gw = gateway_factory(config(*fakes))
    systems = [f"Tenant {i:03d}. " + SYSTEM for i in range(6)]
    rids = []
    for _ in range(5):
        for system in systems:
            rids.append(ask(gw, "pooled", "Can I return it?", system=system)[1])
    placement = served_by(fakes)
    assert all(len(set(names)) == 1 and len(names) == 5 for names in placement.values()), placement
    assert len({names[0] for names in placement.values()}) == 2  # prefixes spread over both
    rows = ledger_rows(gw.ledger_path, expect=30)
    cached = [r for r in rows if r["cached_input_tokens"] > 0]
    assert len(cached) == 24  # every request after the first of its prefix read the warm cache


def test_without_sticky_routing_a_prefix_spreads_and_misses(gateway_factory, fakes):
    gw = gateway_factory(config(*fakes, {"sticky": False}))
    for _ in range(24):
        ask(gw, "pooled", "Can I return it?")
    (names,) = served_by(fakes).values()
    assert set(Counter(names)) == {"one", "two"}
