"""Per-request cache control: headers and the body field, with clear 400s for bad values."""

from __future__ import annotations

import pytest

from thrifty.cache.control import CacheControl, fold_headers, parse_control
from thrifty.errors import InvalidRequest


def test_defaults_and_modes():
    assert parse_control(None) == CacheControl("on", None, "default")
    assert parse_control({"cache": "READ_ONLY"}).mode == "read_only"
    off = parse_control({"cache": "off"})
    assert not off.reads and not off.writes
    write_only = parse_control({"cache": "write_only", "max_age": "30", "namespace": "docs-bot"})
    assert (write_only.reads, write_only.writes, write_only.max_age, write_only.namespace) == (
        False, True, 30.0, "docs-bot",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "param"),
    [
        ({"cache": "sometimes"}, "thrifty.cache"),
        ({"cache": 1}, "thrifty.cache"),
        ({"max_age": -1}, "thrifty.max_age"),
        ({"max_age": "soon"}, "thrifty.max_age"),
        ({"max_age": True}, "thrifty.max_age"),
        ({"max_age": float("nan")}, "thrifty.max_age"),
        ({"namespace": ""}, "thrifty.namespace"),
        ({"namespace": "a b"}, "thrifty.namespace"),
        ({"namespace": "x" * 65}, "thrifty.namespace"),
        ({"namespace": "team\n"}, "thrifty.namespace"),  # a trailing newline is not a name
        ({"max_age": "1_000"}, "thrifty.max_age"),  # Python's float() reads it; a header never should
        ({"max_age": "1e3"}, "thrifty.max_age"),
    ],
)
def test_bad_body_values_name_the_parameter(field, param):
    with pytest.raises(InvalidRequest) as exc:
        parse_control(field)
    assert exc.value.status == 400 and exc.value.param == param


def test_thrifty_field_must_be_an_object():
    with pytest.raises(InvalidRequest) as exc:
        parse_control("off")
    assert exc.value.param == "thrifty"


@pytest.mark.parametrize(
    ("headers", "param"),
    [
        ({"x-thrifty-cache": "maybe"}, "x-thrifty-cache"),
        ({"x-thrifty-cache-max-age": "-3"}, "x-thrifty-cache-max-age"),
        ({"x-thrifty-cache-namespace": "no spaces"}, "x-thrifty-cache-namespace"),
    ],
)
def test_bad_headers_name_the_header(headers, param):
    with pytest.raises(InvalidRequest) as exc:
        fold_headers(headers, {"model": "m"})
    assert exc.value.param == param


def test_headers_fold_into_the_body_field_and_the_body_wins():
    body = {"model": "m", "thrifty": {"namespace": "from-body", "task": "code"}}
    folded = fold_headers({"x-thrifty-cache": "read_only", "x-thrifty-cache-namespace": "hdr"}, body)
    assert folded["thrifty"] == {"cache": "read_only", "namespace": "from-body", "task": "code"}
    assert body["thrifty"] == {"namespace": "from-body", "task": "code"}  # not mutated
    assert fold_headers({}, body) is body


@pytest.mark.parametrize("key", ["mode", "ttl", "cache_mode"])
def test_an_unknown_key_of_the_thrifty_object_is_a_400_naming_it(key):
    from thrifty.request import validate_chat

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "thrifty": {key: "off"}}
    with pytest.raises(InvalidRequest) as exc:
        validate_chat(body)
    assert exc.value.status == 400 and exc.value.param == f"thrifty.{key}"


def test_the_thrifty_object_accepts_exactly_the_cache_routing_and_compression_fields():
    from thrifty.cache.keys import CACHE_CONTROL_FIELDS
    from thrifty.compress.control import FIELD
    from thrifty.request import THRIFTY_FIELDS
    from thrifty.routing.hints import FIELDS

    assert CACHE_CONTROL_FIELDS | set(FIELDS) | {FIELD} == THRIFTY_FIELDS
