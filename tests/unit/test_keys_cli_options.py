"""`thrifty keys create|update` refuse impossible budgets and limits before calling the gateway."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from thrifty.keys_cli import keys

# a port nothing listens on: a value that got past the options would fail to connect (exit 1)
URL = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("option", "value"),
    [("--daily-usd", "nan"), ("--monthly-usd", "inf"), ("--total-usd", "1e400"), ("--daily-usd", "-5"),
     ("--rpm", "0"), ("--tpm", "-1")],
)  # fmt: skip
def test_impossible_budgets_and_limits_are_usage_errors(option, value):
    result = CliRunner().invoke(keys, ["--url", URL, "create", "--tenant", "t", option, value])
    assert result.exit_code == 2, result.output
    assert option in result.output
