"""Provider prompt caching pieces: stable prefix keys, Anthropic breakpoints, rendezvous ranking."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from thrifty.pricing.tokens import TokenCounter
from thrifty.promptcache.prefix import prefix_bytes, prefix_key
from thrifty.promptcache.sticky import rendezvous_rank
from thrifty.providers.anthropic_cache import Breakpoints, min_tokens_for
from thrifty.providers.anthropic_request import to_anthropic_request

TOKENS = TokenCounter()
LONG = "You are a careful support agent for the Acme store. " * 150  # ~1,650 tokens
SHORT = "You are terse."
TOOLS = [
    {"type": "function", "function": {"name": "b_lookup", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "a_order", "parameters": {"type": "object"}}},
]


def body(system: str, *turns: str, tools=None):
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    out = {"model": "claude-sonnet-4-5", "messages": messages}
    if tools:
        out["tools"] = tools
    return out


def test_prefix_key_ignores_the_question_and_keeps_tool_order():
    a, b = body(LONG, "first question"), body(LONG, "another question", "answer", "follow-up")
    assert prefix_key(a) == prefix_key(b)
    assert prefix_key(body(LONG + "x", "q")) != prefix_key(a)
    swapped = body(LONG, "q", tools=list(reversed(TOOLS)))
    assert prefix_key(body(LONG, "q", tools=TOOLS)) != prefix_key(swapped)  # order is part of the prefix
    assert b'"b_lookup"' in prefix_bytes(body(LONG, "q", tools=TOOLS)).split(b"a_order")[0]
    assert prefix_key({"model": "m", "messages": [{"role": "user", "content": "hi"}]}) is None


def cache_marks(payload):
    marks = []
    for i, tool in enumerate(payload.get("tools") or []):
        if "cache_control" in tool:
            marks.append(("tool", i))
    system = payload.get("system")
    if isinstance(system, list):
        marks += [("system", i) for i, b in enumerate(system) if "cache_control" in b]
    for t, turn in enumerate(payload["messages"]):
        if isinstance(turn["content"], list):
            marks += [("turn", t) for b in turn["content"] if "cache_control" in b]
    return marks


def test_breakpoint_on_long_system_prompt_only():
    bp = Breakpoints(TOKENS)
    long_payload = bp.apply(to_anthropic_request(body(LONG, "q"), "claude-sonnet-4-5"))
    assert cache_marks(long_payload) == [("system", 0)]
    assert long_payload["system"][0]["text"] == LONG  # same bytes, now a block
    short_payload = to_anthropic_request(body(SHORT, "q"), "claude-sonnet-4-5")
    assert bp.apply(short_payload) == short_payload  # below the minimum: nothing added


def test_breakpoints_on_tools_system_and_earlier_turns_never_the_last_turn():
    big_tools = [
        {"type": "function", "function": {"name": f"t{i}", "description": "lookup " * 120, "parameters": {}}}
        for i in range(10)
    ]
    payload = to_anthropic_request(
        body(SHORT, "q1 " + LONG, "a1", "q2", tools=big_tools), "claude-sonnet-4-5"
    )
    marked = Breakpoints(TOKENS).apply(payload)
    assert cache_marks(marked) == [("tool", 9), ("system", 0), ("turn", 1)]
    assert "cache_control" not in str(marked["messages"][-1])
    assert len(cache_marks(marked)) <= 4
    assert "cache_control" not in str(payload)  # the input is not changed


def test_haiku_needs_more_tokens_and_min_tokens_overrides():
    medium = "Rules of the house. " * 300  # ~1,500 tokens: enough for Sonnet, not for Haiku
    assert min_tokens_for("claude-3-5-haiku-latest") == 2048 and min_tokens_for("claude-opus-4-5") == 1024
    haiku = to_anthropic_request(body(medium, "q"), "claude-3-5-haiku-latest")
    assert cache_marks(Breakpoints(TOKENS).apply(haiku)) == []
    assert cache_marks(Breakpoints(TOKENS, min_tokens=100).apply(haiku)) == [("system", 0)]
    sonnet = to_anthropic_request(body(medium, "q"), "claude-sonnet-4-5")
    assert cache_marks(Breakpoints(TOKENS).apply(sonnet)) == [("system", 0)]


def test_caller_breakpoints_are_left_alone():
    request = body(LONG, "q1", "a1", "q2")
    request["messages"][1]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    payload = to_anthropic_request(request, "claude-sonnet-4-5")
    assert Breakpoints(TOKENS).apply(payload) == payload
    assert cache_marks(payload) == [("turn", 0)]


@dataclass(frozen=True)
class Dep:
    key: str
    weight: float = 1.0


def test_rendezvous_is_stable_spread_and_minimal_on_removal():
    deps = [Dep("a:m"), Dep("b:m"), Dep("c:m")]
    keys = [f"prefix-{i}" for i in range(3000)]
    first = {k: rendezvous_rank(k, deps)[0].key for k in keys}
    assert first == {k: rendezvous_rank(k, list(reversed(deps)))[0].key for k in keys}  # order-free
    spread = Counter(first.values())
    assert all(800 < n < 1200 for n in spread.values()), spread
    without_b = {k: rendezvous_rank(k, [deps[0], deps[2]])[0].key for k in keys}
    moved = [k for k in keys if first[k] != without_b[k]]
    assert moved and all(first[k] == "b:m" for k in moved)  # only b's prefixes move


def test_rendezvous_respects_weights():
    deps = [Dep("a:m", 3.0), Dep("b:m", 1.0)]
    spread = Counter(rendezvous_rank(f"k{i}", deps)[0].key for i in range(4000))
    assert 2700 < spread["a:m"] < 3300
