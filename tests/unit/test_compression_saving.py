"""The compression saving's input-token count: what compression removed, added to what was billed."""

from __future__ import annotations

import pytest

from thrifty.bookkeeping import Bookkeeper
from thrifty.pipeline import Call
from thrifty.types import Tenant, Usage


def call(before: int, after: int) -> Call:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    out = Call(body=body, original=body, tenant=Tenant(), request_id="r", stream=False)
    out.original_input_tokens = before
    out.meta["compressed_input_tokens"] = after
    return out


original = Bookkeeper.original_input_tokens


def test_the_removed_tokens_are_put_on_the_provider_s_tokenizer_scale():
    # the provider counts the sent messages 10 % higher than cl100k: so would it the removed ones
    assert original(call(1000, 400), Usage(input_tokens=440)) == 440 + 660
    assert original(call(1000, 400), Usage(input_tokens=400)) == 1000


def test_tokens_the_local_count_does_not_cover_do_not_multiply_the_saving():
    # 15 tool definitions: the provider bills 4,134 tokens for 4,095 locally counted... of which the
    # messages were only 300 (compressed from 339): the saving is the 39 tokens removed, not 8 × that
    assert original(call(339, 300), Usage(input_tokens=4134)) == 4134 + 39


@pytest.mark.parametrize("usage", [Usage(input_tokens=0), Usage(input_tokens=500, estimated=True)])
def test_without_a_billed_count_the_local_one_stands(usage):
    assert original(call(1000, 400), usage) == 1000


def test_an_uncompressed_request_is_its_billed_count():
    body = {"model": "gpt-4o", "messages": []}
    plain = Call(body=body, original=body, tenant=Tenant(), request_id="r", stream=False)
    assert original(plain, Usage(input_tokens=123)) == 123
