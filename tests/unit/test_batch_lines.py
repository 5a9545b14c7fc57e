"""Parsing batch input files: errors name the physical line of the file."""

from __future__ import annotations

import orjson

from thrifty.batching.lines import parse_lines
from thrifty.types import Tenant


def line(custom_id: str, model: str = "gpt-4o-mini") -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return orjson.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def test_error_line_numbers_count_blank_lines():
    data = b"\n" + line("a") + b"\n" + b"not json\n" + b"   \n" + line("a") + b"\n"
    lines, errors = parse_lines(data, "/v1/chat/completions", Tenant())
    assert [ln.custom_id for ln in lines] == ["a"]
    assert [(e["code"], e["line"]) for e in errors] == [("invalid_json_line", 3), ("duplicate_custom_id", 5)]


def test_crlf_files_are_numbered_like_lf_files():
    data = line("a") + b"\r\n\r\n" + b"{broken\r\n"
    _, errors = parse_lines(data, "/v1/chat/completions", Tenant())
    assert [(e["code"], e["line"]) for e in errors] == [("invalid_json_line", 3)]


def test_a_file_of_blank_lines_is_empty():
    _, errors = parse_lines(b"\n \n\n", "/v1/chat/completions", Tenant())
    assert [e["code"] for e in errors] == ["empty_file"]
