"""Admin API key bodies: an expiry no date can hold is refused (400 naming the field)."""

from __future__ import annotations

import time

import pytest

from thrifty.errors import InvalidRequest
from thrifty.tenancy.keys import VirtualKey
from thrifty.tenancy.spec import create_fields, update_fields

YEAR_9999_END = 253402300799  # 9999-12-31T23:59:59Z


@pytest.mark.parametrize(
    "expires_at", [99999999999999999999999, 8.64e24, YEAR_9999_END + 1, float("inf"), float("nan"), -1, -1e20]
)
def test_out_of_range_expires_at_is_refused(expires_at):
    for parse in (
        lambda b: create_fields(b),
        lambda b: update_fields(b, VirtualKey(id="key_x", tenant="t", hint="h")),
    ):
        with pytest.raises(InvalidRequest) as caught:
            parse({"tenant": "t", "expires_at": expires_at})
        assert caught.value.param == "expires_at" and caught.value.status == 400


@pytest.mark.parametrize(
    "expires_in_s", [99999999999999999999 * 86400, 1e300, YEAR_9999_END, float("inf"), 0, -5]
)
def test_out_of_range_expires_in_s_is_refused(expires_in_s):
    with pytest.raises(InvalidRequest) as caught:
        create_fields({"tenant": "t", "expires_in_s": expires_in_s})
    assert caught.value.param == "expires_in_s"


def test_representable_expiries_pass():
    assert create_fields({"expires_at": YEAR_9999_END})[1]["expires_at"] == YEAR_9999_END
    assert create_fields({"expires_in_s": 1000 * 365 * 86400})[1]["expires_at"] > time.time()
    # a past (but real) time is how a key is expired now: it is kept, not refused
    past = time.time() - 60
    assert update_fields({"expires_at": past}, VirtualKey(id="key_x", tenant="t", hint="h")) == {
        "expires_at": past
    }
    assert update_fields({"expires_at": None}, VirtualKey(id="key_x", tenant="t", hint="h")) == {
        "expires_at": None
    }
