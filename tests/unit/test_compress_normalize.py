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
    return Normalizer(TOKENS).normalize_text(text)


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


def test_opt_in_dedupe_drops_exact_duplicate_blocks_after_the_first():
    para = "Our refund policy: items may be returned within thirty days with a receipt."
    text = f"{para}\n\nSomething else.\n\n{para}\n\nShort.\n\nShort."
    out = Normalizer(TOKENS, dedupe=True).normalize_text(text, set())
    assert out.count(para) == 1
    assert out.count("Short.") == 2  # below the minimum length: kept


def test_duplicate_code_is_never_dropped():
    code = "    x = compute_the_value(with_a_long_argument_name, and_another_one)\n"
    text = f"Step one:\n\n{code}\nStep two:\n\n{code}"
    assert Normalizer(TOKENS, dedupe=True).normalize_text(text, set()).count(code.strip()) == 2


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


# ---- lossless means lossless: nothing is dropped, across messages or inside one (defect: dedupe)

LONG_Q = "Please list every change between version two and version three of the billing API, by endpoint."


def run(messages: list[dict], **kw) -> list[dict]:
    return Normalizer(TOKENS, **kw).run({"model": "m", "messages": messages})[0]["messages"]


def test_a_repeated_question_after_an_error_reaches_the_model():
    msgs = run([
        {"role": "user", "content": LONG_Q},
        {"role": "assistant", "content": "Sorry, I had an error."},
        {"role": "user", "content": LONG_Q},
    ])  # fmt: skip
    assert [m["content"] for m in msgs] == [LONG_Q, "Sorry, I had an error.", LONG_Q]


def test_identical_tool_results_and_quotes_across_roles_are_all_kept():
    result = '{"status": "ok", "rows": 3, "note": "the nightly export finished without any warnings"}'
    msgs = run([
        {"role": "system", "content": LONG_Q},
        {"role": "user", "content": LONG_Q},
        {"role": "assistant", "content": f"You asked:\n\n{LONG_Q}\n\nHere is what I found."},
        {"role": "tool", "tool_call_id": "a", "content": result},
        {"role": "tool", "tool_call_id": "b", "content": result},
    ])  # fmt: skip
    assert msgs[1]["content"] == LONG_Q
    assert LONG_Q in msgs[2]["content"]
    assert json.loads(msgs[3]["content"]) == json.loads(msgs[4]["content"]) == json.loads(result)


def test_a_text_part_repeated_after_an_image_is_kept():
    parts = [
        {"type": "text", "text": LONG_Q},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": LONG_Q},
    ]
    msgs = run([{"role": "user", "content": parts}])
    assert [p.get("text") for p in msgs[0]["content"]] == [LONG_Q, None, LONG_Q]


def test_repetition_inside_one_message_is_meaning_and_is_kept():
    step = "Add two cups of flour to the bowl and stir slowly until no dry streaks remain in the batter."
    recipe = f"{step}\n\nBeat in the eggs.\n\n{step}\n\nHow many cups of flour in total?"
    assert norm(recipe) == recipe


def test_whitespace_only_content_is_not_emptied():
    assert run([{"role": "user", "content": "   "}])[0]["content"] == "   "


def test_opt_in_dedupe_stays_inside_one_user_message_and_never_empties_it():
    chunk = "The export job runs nightly at 02:00 UTC and writes one CSV file per tenant to the bucket."
    rag = f"{chunk}\n\nAnother passage about something else entirely.\n\n{chunk}\n\nWhen does the export run?"
    msgs = run([
        {"role": "system", "content": chunk},
        {"role": "user", "content": rag},
        {"role": "assistant", "content": chunk},
        {"role": "user", "content": [{"type": "text", "text": chunk}, {"type": "text", "text": chunk}]},
        {"role": "user", "content": chunk},
    ], dedupe=True)  # fmt: skip
    assert msgs[0]["content"] == chunk and msgs[2]["content"] == chunk and msgs[4]["content"] == chunk
    assert msgs[1]["content"].count(chunk) == 1 and msgs[1]["content"].endswith("When does the export run?")
    assert [p["text"] for p in msgs[3]["content"]] == [chunk, chunk]  # a part is never emptied


def test_dedupe_is_off_by_default():
    para = "Our refund policy: items may be returned within thirty days with a receipt."
    text = f"{para}\n\nSomething else.\n\n{para}\n\nAnything more?"
    assert norm(text) == text


# ---- column alignment and numbers (defect: fixed-width text re-spaced as prose)

FIXED = "Name      Age  City\nAlice     30   Paris\nBob            London\nCarol     41   Oslo"


def test_fixed_width_columns_are_never_re_spaced():
    text = f"{FIXED}\n\nWhat is Bob's age?"
    out = norm(text)
    assert FIXED in out and out.endswith("What is Bob's age?")
    header_only = "Name Age City\nBob            London"
    assert norm(header_only) == header_only  # one padded line aligned against the header


def test_a_space_run_next_to_a_digit_is_kept():
    for text in ("Числа  1 234  567", "Total:   42 items", "Range 10  20 mm"):
        assert norm(text) == text
    assert norm("| n |\n|---|\n| 1 234  567 |") == "| n |\n|---|\n| 1 234  567 |"


def test_prose_double_spaces_still_collapse():
    assert norm("It rained.  Then   it   stopped.") == "It rained. Then it stopped."
