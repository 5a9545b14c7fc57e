"""Cache keys: what makes two requests the same question, and what keeps them apart."""

from __future__ import annotations

import pytest

from thrifty.cache.keys import Scope, exact_key, last_user_text, nondeterministic, semantic_scope

A = Scope("tenant-a")


def body(*messages: dict, **params) -> dict:
    return {"model": "gpt-4o", "messages": list(messages), **params}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def key(b: dict, scope: Scope = A) -> str:
    return exact_key(scope, b, b["model"])


def test_key_order_and_inline_space_runs_do_not_change_the_key():
    one = {"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": "What  is   it?"}]}
    two = {"messages": [{"content": "What is it?", "role": "user"}], "temperature": 0, "model": "gpt-4o"}
    assert key(one) == key(two)
    parts = body({"role": "user", "content": [{"type": "text", "text": "What   is it?"}]})
    assert key(parts) == key(body({"role": "user", "content": [{"type": "text", "text": "What is it?"}]}))


def test_streaming_and_bookkeeping_fields_do_not_change_the_key():
    plain = body(user("hi"))
    assert key(plain) == key(
        {**plain, "stream": True, "stream_options": {"include_usage": True}, "user": "u1"}
    )
    assert key(plain) == key({**plain, "thrifty": {"cache": "read_only", "namespace": "n", "max_age": 5}})


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o-mini"},
        {"temperature": 0.5},
        {"top_p": 0.5},
        {"seed": 7},
        {"n": 2},
        {"stop": ["\n"]},
        {"max_tokens": 10},
        {"logprobs": True},
        {"presence_penalty": 1},
        {"frequency_penalty": 1},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "none"},
        {"thrifty": {"task": "code"}},
        {"messages": [user("What is it ?")]},
        {"messages": [user("what is it?")]},
        {"messages": [user("What is it?\n")]},
        {"messages": [{"role": "system", "content": "Be brief."}, user("What is it?")]},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change):
    base = body(user("What is it?"))
    assert key(base) != key({**base, **change})


def test_tabs_are_kept_since_empty_cells_change_the_answer():
    row = "How many columns does this TSV row have? Row:\nalice\t\tparis\t42"
    assert key(body(user(row))) != key(body(user(row.replace("\t\t", "\t\t\t\t"))))
    assert key(body(user(row))) != key(body(user(row.replace("\t\t", " "))))
    assert key(body(user("a\t\t\nb"))) != key(body(user("a\nb")))  # trailing empty cells
    assert key(body(user("a \t b"))) != key(body(user("a b")))


def test_line_breaks_and_indentation_are_kept():
    code = body(user("def f():\n    return 1"))
    assert key(code) != key(body(user("def f(): return 1")))
    assert key(code) != key(body(user("def f():\n  return 1")))
    assert key(body(user("a  \nb"))) == key(body(user("a\nb")))  # trailing spaces before a break


def test_whitespace_inside_code_is_kept():
    assert key(body(user("Output of `print('a  b')`?"))) != key(body(user("Output of `print('a b')`?")))
    fenced = "Fix it:\n```\nx  =  1  \ny = 'a  b'\n```\nthanks  a lot"
    assert key(body(user(fenced))) != key(body(user(fenced.replace("'a  b'", "'a b'"))))
    assert key(body(user(fenced))) != key(body(user(fenced.replace("1  \n", "1\n"))))
    # the prose around the code is still canonical
    assert key(body(user(fenced))) == key(body(user(fenced.replace("thanks  a", "thanks a"))))
    unclosed = "```\nprint('a  b')"
    assert key(body(user(unclosed))) != key(body(user(unclosed.replace("a  b", "a b"))))


def test_tenant_and_namespace_scope_the_key():
    b = body(user("hi"))
    assert len({key(b, A), key(b, Scope("tenant-b")), key(b, Scope("tenant-a", "docs"))}) == 3


def test_semantic_scope_is_the_context_without_the_last_user_text():
    def conversation(about: str, last: str) -> dict:
        return body(
            user(f"Who is {about}?"), {"role": "assistant", "content": f"{about} is famous."}, user(last)
        )

    obama = semantic_scope(A, conversation("Barack Obama", "how old is he?"), "gpt-4o")
    assert obama == semantic_scope(A, conversation("Barack Obama", "what is his age?"), "gpt-4o")
    assert obama != semantic_scope(A, conversation("Tom Hanks", "how old is he?"), "gpt-4o")
    assert obama != semantic_scope(
        Scope("tenant-b"), conversation("Barack Obama", "how old is he?"), "gpt-4o"
    )
    assert obama != semantic_scope(A, conversation("Barack Obama", "how old is he?"), "gpt-4o-mini")
    with_tools = {**conversation("Barack Obama", "how old is he?"), "tools": [{"type": "function"}]}
    assert obama != semantic_scope(A, with_tools, "gpt-4o")


def test_last_user_text():
    assert last_user_text(body(user("  hi  "))) == "hi"
    assert last_user_text(body({"role": "user", "content": [{"type": "text", "text": "a"}]})) == "a"
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    assert last_user_text(body({"role": "user", "content": [{"type": "text", "text": "a"}, image]})) is None
    assert last_user_text(body(user("q"), {"role": "assistant", "content": "a"})) is None


def test_nondeterministic_means_an_explicit_positive_temperature():
    assert nondeterministic({"temperature": 0.7})
    assert not nondeterministic({"temperature": 0})
    assert not nondeterministic({})


def test_equivalent_compression_modes_share_a_key():
    from thrifty.cache.keys import canonical_request

    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    def key(compress):
        body = base if compress is None else {**base, "thrifty": {"compress": compress}}
        return canonical_request(body, "m")

    assert key(None) == key("on") == key(" ON ")
    assert key("off") == key("OFF") != key(None)
    assert key("lossless") not in (key("off"), key(None))
