"""Lossless normalisation: code untouched, JSON compacted with the same value, duplicates dropped."""

from __future__ import annotations

import json

import pytest

from thrifty.compress.base import TokenCache
from thrifty.compress.blocks import split_blocks
from thrifty.compress.normalize import Normalizer, compact_json_spans, minify_json
from thrifty.compress.prefix import first_unstable

TOKENS = TokenCache()
PY_FENCED = '```python\ndef f(x):\n    if x:\n        return   "a    b"\n\n\n    return  None  \n```\n'
PY_UNFENCED = (
    'def g(items):\n    for i in items:\n        print(i,   "  spaced  ")\n    return   len(items)\n'
)
PRETTY = {"name": "thrifty", "tags": ["a  b", "c"], "nested": {"x": 1.50, "y": [1, 2, {"z": None}]}}


def norm(text: str) -> str:
    return Normalizer(TOKENS).normalize_text(text, set())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "one line",
        "a\n\n\n  b\n",
        PY_FENCED + "\n\ntext   here\n| a | b |\n|---|---|\n",
        "```\nunclosed fence\n\n\n   x",
        "\r\nwindows\r\n\r\n\r\nlines\r\n",
    ],
)
def test_block_split_is_lossless(text):
    assert "".join(b.text for b in split_blocks(text)) == text


def test_fenced_code_is_untouched_byte_for_byte():
    text = "Fix this:\n\n" + PY_FENCED + "\nThanks   a lot."
    out = norm(text)
    assert PY_FENCED.rstrip("\n") in out
    assert "Thanks a lot." in out


def test_unfenced_python_keeps_indentation_and_string_spaces():
    text = "Why   does this fail?\n\n" + PY_UNFENCED + "\n\n\nIt   prints twice."
    out = norm(text)
    assert PY_UNFENCED in out  # indentation, inner spacing, string contents all kept
    assert out.startswith("Why does this fail?") and out.endswith("It prints twice.")


def test_pretty_json_is_compacted_without_changing_its_value():
    pretty = json.dumps(PRETTY, indent=4)
    text = f"Here is the record:\n{pretty}\nSummarise it."
    out = norm(text)
    compact = out.split("\n")[1]
    assert json.loads(compact) == PRETTY
    assert compact == minify_json(pretty) and " " not in compact.replace("a  b", "")
    assert "1.5" in compact and '"a  b"' in compact  # strings keep their spaces
    assert TOKENS.text(out) < TOKENS.text(text)


def test_json_keeps_key_order_duplicates_and_number_spelling():
    raw = '{\n  "b": 1.10,\n  "a": 1e5,\n  "b": "dup"\n}'
    assert compact_json_spans(raw) == '{"b":1.10,"a":1e5,"b":"dup"}'


def test_json_fence_is_compacted_but_other_fences_are_not():
    fence = "```json\n" + json.dumps(PRETTY, indent=2) + "\n```"
    out = norm(fence)
    assert json.loads(out.split("\n")[1]) == PRETTY and len(out.split("\n")) == 3
    broken = '```json\n{\n  // a comment\n  "a": 1\n}\n```'
    assert norm(broken) == broken


def test_text_that_only_looks_like_json_is_left_alone():
    for text in ("[1] Smith, J.   A paper.", "{not json at all}", "[citation needed] and  more"):
        out = norm(text)
        assert out.replace(" ", "") == text.replace(" ", "")


def test_exact_duplicate_blocks_are_dropped_after_the_first():
    para = "Our refund policy: items may be returned within thirty days with a receipt."
    text = f"{para}\n\nSomething else.\n\n{para}\n\nShort.\n\nShort."
    out = norm(text)
    assert out.count(para) == 1
    assert out.count("Short.") == 2  # below the minimum length: kept


def test_duplicate_code_is_never_dropped():
    code = "    x = compute_the_value(with_a_long_argument_name, and_another_one)\n"
    text = f"Step one:\n\n{code}\nStep two:\n\n{code}"
    assert norm(text).count(code.strip()) == 2


def test_tables_lose_padding_only():
    table = "| name      | value |\n|-----------|------:|\n| alpha     |     1 |\n"
    out = norm("Data:\n\n" + table)
    assert "| name | value |\n|---|---:|\n| alpha | 1 |" in out


def test_messages_report_tokens_and_leave_untouched_messages_identical():
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You   are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hi   there"}, {"type": "image_url"}]},
            {"role": "tool", "tool_call_id": "t", "content": json.dumps(PRETTY, indent=2)},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function"}]},
        ],
    }
    out, report = Normalizer(TOKENS).run(body)
    msgs = out["messages"]
    assert msgs[0]["content"] == "You are terse."
    assert msgs[1]["content"][0]["text"] == "Hi there" and msgs[1]["content"][1] == {"type": "image_url"}
    assert json.loads(msgs[2]["content"]) == PRETTY and "\n" not in msgs[2]["content"]
    assert msgs[3] is body["messages"][3]
    assert report.tokens_before == TOKENS.messages(body["messages"])
    assert report.tokens_after == TOKENS.messages(msgs) and report.saved > 0
    assert body["messages"][0]["content"] == "You   are terse."  # input not mutated
    clean = {"model": "m", "messages": [{"role": "user", "content": "Already clean."}]}
    same, report = Normalizer(TOKENS).run(clean)
    assert same is clean and report.saved == 0


def test_normalisation_keeps_prefixes_stable():
    para = "A long block that shows up in the system prompt and again later in the chat."
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": f"Rules:   be   brief.\n\n{para}"},
            {"role": "user", "content": f"{para}\n\nQuestion  one?"},
            {"role": "assistant", "content": "Answer   one."},
            {"role": "user", "content": f"Question two?\n\n{para}"},
        ],
    }
    normalizer = Normalizer(TOKENS)
    assert first_unstable(lambda b: normalizer.run(b)[0], body) is None
