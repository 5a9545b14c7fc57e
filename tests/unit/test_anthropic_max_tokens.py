"""The `max_tokens` an Anthropic request carries when the client sets none: the provider's
`default_max_tokens` (the Messages API requires one); a client's own cap always wins."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import base_config
from thrifty import config as config_mod
from thrifty.gateway import Gateway


def sent_max_tokens(fake: Any) -> list[int]:
    return [r["body"]["max_tokens"] for r in fake.requests("/v1/messages")]


@pytest.mark.parametrize(
    ("default", "fields", "expected"),
    [
        (None, {}, 4096),
        (64000, {}, 64000),
        (64000, {"max_tokens": 300}, 300),
        (64000, {"max_completion_tokens": 200, "max_tokens": 300}, 200),
    ],
)
async def test_default_and_client_caps(fake, default, fields, expected):
    cfg = base_config(fake)
    if default is not None:
        cfg["providers"]["fakeanthropic"]["default_max_tokens"] = default
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], **fields}
    async with Gateway(config_mod.parse(cfg, env={})) as gw:
        await gw.chat(body)
        stream = await gw.chat_stream(body)
        [chunk async for chunk in stream]
    assert sent_max_tokens(fake) == [expected, expected]


def test_a_default_below_one_is_a_config_error(fake):
    cfg = base_config(fake)
    cfg["providers"]["fakeanthropic"]["default_max_tokens"] = 0
    with pytest.raises(config_mod.ConfigError, match="default_max_tokens"):
        config_mod.parse(cfg, env={})
