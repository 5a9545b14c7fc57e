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


def test_several_workers_with_keys_need_shared_counters(tmp_path, monkeypatch):
    """Each worker would count budgets and rate limits on its own: a key got twice its budget with
    two workers. Refused before anything starts, from the flag and from the config alike."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    config = tmp_path / "thrifty.yaml"
    config.write_text("server: {master_key: mk-0123456789abcdef}\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--workers", "2"])
    assert result.exit_code == 2, result.output
    assert "--workers: 2 workers would each count budgets and rate limits" in result.output
    assert "tenancy.state.redis_url" in result.output and "listening" not in result.output

    config.write_text("server: {master_key: mk-0123456789abcdef, workers: 3}\n")
    result = CliRunner().invoke(main, ["config", "check", str(config)])
    assert result.exit_code == 2 and "server.workers: 3 workers would each count" in result.output

    config.write_text("server: {master_key: mk-0123456789abcdef, workers: 3}\ntenancy: {enabled: false}\n")
    assert CliRunner().invoke(main, ["config", "check", str(config)]).exit_code == 0
