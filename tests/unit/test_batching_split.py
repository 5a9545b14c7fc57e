"""Micro-batch prompt framing, answer splitting and usage shares."""

from __future__ import annotations

import orjson

from thrifty.batching.prompt import combined_text, parse_items, split
from thrifty.batching.shares import apportion, share_usage
from thrifty.testing.fake_batch import batched_answer
from thrifty.types import Usage


def answers(*pairs) -> str:
    return orjson.dumps([{"id": i, "answer": a} for i, a in pairs]).decode()


def test_framing_round_trips_and_the_fake_answers_each_item():
    items = ["Is this spam? 'WIN A PRIZE'", "line one\nline two", '{"json": true}']
    text = combined_text(items)
    assert parse_items(text) == items
    assert parse_items("just a question") is None
    assert split(batched_answer(text), 3) == {
        0: "echo: " + items[0],
        1: "echo: " + items[1],
        2: "echo: " + items[2],
    }


def test_split_clean_fenced_and_partial():
    assert split(answers((1, "a"), (2, "b")), 2) == {0: "a", 1: "b"}
    assert split("```json\n" + answers((2, "b"), (1, "a")) + "\n```", 2) == {0: "a", 1: "b"}
    assert split(answers((1, "a")), 3) == {0: "a"}  # missing items: only those are re-sent


def test_split_refuses_anything_ambiguous():
    assert split(answers((1, "a"), (2, "b"), (3, "c")), 2) == {}  # extra item
    assert split(answers((1, "a"), (1, "b")), 2) == {}  # duplicate id
    assert split(answers((0, "a"), (1, "b")), 2) == {}  # unknown id
    assert split(orjson.dumps(["a", "b"]).decode(), 2) == {}  # no ids
    assert split('[{"id": 1, "answer": "a"}, {"id": 2, "answ', 2) == {}  # truncated JSON
    assert split("Sure! Here are the answers: ...", 2) == {}
    assert split(None, 2) == {}
    assert split(answers((1, "a"), (2, None)), 2) == {0: "a"}  # a non-string answer is not an answer


def test_apportion_sums_exactly():
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(apportion(1001, [0.3, 5.5, 2.2, 9])) == 1001
    assert apportion(5, [0, 0]) == [3, 2]
    shares = share_usage(
        Usage(input_tokens=900, cached_input_tokens=128, output_tokens=61), [1, 2, 3], [5, 5, 1]
    )
    assert sum(s.input_tokens for s in shares) == 900
    assert sum(s.cached_input_tokens for s in shares) == 128
    assert sum(s.output_tokens for s in shares) == 61
    assert (
        shares[2].input_tokens > shares[0].input_tokens and shares[2].output_tokens < shares[0].output_tokens
    )


def test_long_lived_cache_writes_are_shared_too():
    usage = Usage(
        input_tokens=10000, cache_write_tokens=8000, cache_write_long_tokens=6000, output_tokens=100
    )
    shares = share_usage(usage, [1, 1], [1, 1])
    assert [s.cache_write_long_tokens for s in shares] == [3000, 3000]
    assert sum(s.cache_write_tokens for s in shares) == 8000
