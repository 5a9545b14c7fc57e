"""`thrifty serve` and `thrifty ledger tail` refuse out-of-range numbers before doing anything."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from thrifty.cli import main


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["serve", "--port", "99999"], "--port"),  # would bind 99999 mod 65536 otherwise
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--workers", "0"], "--workers"),
        (["serve", "--workers", "1000"], "--workers"),  # would fork a thousand processes
        (["ledger", "tail", "-n", "0"], "-n"),
        (["ledger", "tail", "-n", "99999999999999999999999"], "-n"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(args, option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output, result.output
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_a_port_in_use_is_one_line_before_listening_is_printed(tmp_path, monkeypatch):
    import socket

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.output, result.output
    assert "listening" not in result.output
