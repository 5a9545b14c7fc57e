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


@pytest.mark.parametrize("value", ["99999999999999999999d", "9" * 400, "0", "0d", "300000000000"])
def test_expiry_beyond_year_9999_or_zero_is_a_usage_error(value, monkeypatch):
    monkeypatch.setenv("THRIFTY_MASTER_KEY", "mk")  # without it, the missing key would be the usage error
    for command in (["create", "--tenant", "t"], ["update", "key_x"]):
        result = CliRunner().invoke(keys, ["--url", URL, *command, "--expires-in", value])
        assert result.exit_code == 2, result.output
        assert "--expires-in" in result.output and "Traceback" not in result.output


def test_a_long_but_representable_expiry_passes_the_options(monkeypatch):
    monkeypatch.setenv("THRIFTY_MASTER_KEY", "mk")
    # 1000 years fits before 9999-12-31: the option is fine, only the (absent) gateway fails
    result = CliRunner().invoke(keys, ["--url", URL, "create", "--tenant", "t", "--expires-in", "365000d"])
    assert result.exit_code == 1 and "cannot reach" in result.output, result.output


@pytest.mark.parametrize(
    "expires_at",
    [8.64e24, 1e300, float("inf"), float("-inf"), float("nan"), -1e20, -1.0, 0, "soon", 253402300799],
)
def test_show_never_raises_for_a_stored_expiry(expires_at, capsys):
    from thrifty.keys_cli import _show

    _show({"id": "key_1", "tenant": "t", "key_hint": "h", "models": None, "revoked": False,
           "budgets": {"daily_usd": None}, "rate_limits": {}, "expires_at": expires_at})  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("key_1") and "expires: " in out and "never" not in out


def test_show_says_never_only_without_an_expiry(capsys):
    from thrifty.keys_cli import _show

    _show({"id": "key_1", "tenant": "t", "key_hint": "h", "models": ["m"], "revoked": True,
           "budgets": {}, "rate_limits": {}, "expires_at": None})  # fmt: skip
    assert "expires: never" in capsys.readouterr().out


@pytest.mark.parametrize(
    "url",
    ["notaurl", "file:///etc/passwd", "ftp://127.0.0.1/", "http://", "http://127.0.0.1:notaport", "://x"],
)
def test_a_malformed_url_is_a_one_line_usage_error(url, monkeypatch):
    monkeypatch.setenv("THRIFTY_MASTER_KEY", "mk")
    result = CliRunner().invoke(keys, ["--url", url, "list"])
    assert result.exit_code == 2, result.output
    assert "--url" in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, (ValueError, OSError)), result.exception


def test_an_unreachable_gateway_is_exit_1(monkeypatch):
    monkeypatch.setenv("THRIFTY_MASTER_KEY", "mk")
    result = CliRunner().invoke(keys, ["--url", URL, "list"])
    assert result.exit_code == 1 and "cannot reach" in result.output, result.output


def test_the_cli_and_the_api_agree_on_the_latest_expiry():
    from thrifty import keys_cli
    from thrifty.tenancy import spec

    assert keys_cli.LAST_EXPIRY == spec.LAST_EXPIRY
