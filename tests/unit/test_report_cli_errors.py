"""`thrifty report` answers bad windows and unreachable ledgers with one line, not a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.servers import free_port
from thrifty.cli import main


def run(tmp_path: Path, ledger: str, *args: str):
    config = tmp_path / "thrifty.yaml"
    config.write_text(f"ledger:\n{ledger}")
    return CliRunner().invoke(main, ["report", "--config", str(config), *args])


def one_line_error(result) -> str:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("since", "until"),
    [("7d", "30d"), ("2026-01-02", "2026-01-01"), ("2026-01-01", "2026-01-01"), ("now", "1h")],
)
def test_a_window_that_ends_before_it_starts_is_a_usage_error(tmp_path, since, until):
    result = run(tmp_path, f"  path: {tmp_path / 'ledger.db'}\n", "--since", since, "--until", until)
    assert result.exit_code == 2, result.output
    assert "--since" in result.output and "--until" in result.output


def test_a_window_in_order_is_fine(tmp_path):
    result = run(tmp_path, f"  path: {tmp_path / 'ledger.db'}\n", "--since", "30d", "--until", "7d")
    assert result.exit_code == 0, result.output


def test_a_postgres_ledger_without_a_dsn_is_a_config_error(tmp_path):
    result = run(tmp_path, "  backend: postgres\n")
    assert result.exit_code == 2
    assert re.match(r"config error: ledger\.dsn: ", one_line_error(result))


def test_a_malformed_dsn_is_a_config_error(tmp_path):
    result = run(tmp_path, "  backend: postgres\n  dsn: 'not a dsn at all'\n")
    assert result.exit_code == 2, result.output
    assert one_line_error(result).startswith("config error: ledger.dsn: ")


@pytest.mark.parametrize("command", [["report"], ["ledger", "tail"]])
def test_an_unreachable_postgres_is_a_ledger_error(tmp_path, command):
    config = tmp_path / "thrifty.yaml"
    config.write_text(
        f"ledger:\n  backend: postgres\n  dsn: postgresql://u@127.0.0.1:{free_port()}/thrifty\n"
    )
    result = CliRunner().invoke(main, [*command, "--config", str(config)])
    assert result.exit_code == 1, result.output
    line = one_line_error(result)
    assert line.startswith("ledger error: ") and "connect" in line, line


def test_a_missing_postgres_database_is_a_ledger_error(tmp_path, postgres_dsn):
    from psycopg.conninfo import make_conninfo

    dsn = make_conninfo(postgres_dsn, dbname="thrifty_no_such_database")
    result = run(tmp_path, f"  backend: postgres\n  dsn: '{dsn}'\n")
    assert result.exit_code == 1, result.output
    line = one_line_error(result)
    assert line.startswith("ledger error: ") and "thrifty_no_such_database" in line, line


def test_a_sqlite_ledger_that_cannot_be_created_is_a_ledger_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run(tmp_path, f"  path: {blocker / 'ledger.db'}\n")
    assert result.exit_code == 1, result.output
    assert one_line_error(result).startswith("ledger error: ")
