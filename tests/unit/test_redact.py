"""Secrets are scrubbed from upstream error text however the provider echoes them."""

from __future__ import annotations

import pytest

from thrifty.redact import Redactor

KEY = "plainsecret-UPSTREAM-0123"


@pytest.mark.parametrize(
    "text",
    [
        f"Incorrect API key provided: {KEY}.",
        f"Incorrect API key provided: {KEY.upper()}.",
        f"key={KEY.lower()}&x=1",
        f"a message cut at 500 characters mid-key: {KEY[:12]}",
        "Bearer some-token-value-123",
        "SK-PROJ-abcdefgh12345678",
    ],
)
def test_the_key_is_gone_in_every_form(text):
    out = Redactor([KEY])(text)
    assert "[redacted]" in out
    assert KEY.lower()[:8] not in out.lower() and "abcdefgh" not in out and "some-token" not in out


def test_ordinary_text_is_left_alone():
    redact = Redactor([KEY, "short"])  # keys under 6 characters are not looked for
    for text in ("the model is overloaded", "plai", "short answer", ""):
        assert redact(text) == text
