"""`thrifty report` and `thrifty simulate`: the savings waterfall over the ledger or a recorded trace."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click

FORMAT = click.Choice(["table", "json", "csv"])
BY = click.Choice(["tenant", "model", "route", "key", "namespace"])  # = ledger.report.GROUP_BY


def _load(config_path: str | None):
    from thrifty.cli import _load as load_config

    return load_config(config_path)


def _time(value: str | None, now: float, param: str) -> float | None:
    from thrifty.ledger.report import parse_time

    if value is None:
        return None
    try:
        return parse_time(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None


def _window(since: float | None, until: float | None) -> None:
    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            "--since must be before --until (the window starts at --since and ends before --until)"
        )


def open_ledger_or_exit(ledger_config):
    """The ledger to report on. A config error exits 2, printed as `thrifty serve` prints one; a database
    that cannot be opened exits 1 with one line (so does one that cannot be read, in `report`)."""
    from thrifty.cli import _exit_with
    from thrifty.errors import ConfigError
    from thrifty.ledger.open import open_ledger

    try:
        if ledger_config.backend == "postgres" and ledger_config.dsn:
            _check_dsn(ledger_config.dsn)
        return open_ledger(ledger_config)
    except ConfigError as exc:
        _exit_with(exc)
    except (ImportError, OSError, *ledger_errors(ledger_config)) as exc:  # e.g. a folder it cannot create
        exit_ledger_error(exc, ledger_config)


def _check_dsn(dsn: str) -> None:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    from thrifty.errors import ConfigError

    try:
        conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError([("ledger.dsn", f"not a Postgres DSN (postgresql://…): {first}")]) from None


def exit_ledger_error(exc: Exception, ledger_config) -> NoReturn:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = " ".join(lines) or type(exc).__name__
    where = "the Postgres ledger" if ledger_config.backend == "postgres" else f"ledger {ledger_config.path}"
    click.echo(f"ledger error: could not read {where}: {detail}", err=True)
    sys.exit(1)


def ledger_errors(ledger_config) -> tuple[type[Exception], ...]:
    import sqlite3

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    if ledger_config.backend == "postgres":
        try:
            import psycopg
        except ImportError:  # open_ledger reports it
            return errors
        errors += (psycopg.Error,)
    return errors


@click.command("report")
@click.option("--config", "config_path", envvar="THRIFTY_CONFIG", help="YAML config file.")
@click.option("--since", help="Start: ISO date/time (UTC) or a span back from now: 30m, 24h, 7d, 2w.")
@click.option("--until", help="End (exclusive), same forms as --since. Default: now.")
@click.option("--tenant", help="Only this tenant.")
@click.option("--key", "key_id", help="Only this virtual key id.")
@click.option("--model", help="Only rows served by this model.")
@click.option("--route", help="Only rows with this routing label.")
@click.option("--by", type=BY, help="Break totals down (namespace: by cache namespace).")
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
def report(
    config_path: str | None,
    since: str | None,
    until: str | None,
    tenant: str | None,
    key_id: str | None,
    model: str | None,
    route: str | None,
    by: str | None,
    fmt: str,
) -> None:
    """Baseline cost → each lever's saving → actual spend, summed over the ledger."""
    from thrifty.ledger.report import Filters, build_report
    from thrifty.ledger.report_render import render

    config = _load(config_path)
    now = time.time()
    filters = Filters(
        since=_time(since, now, "--since"),
        until=_time(until, now, "--until"),
        tenant=tenant,
        key=key_id,
        model=model,
        route=route,
    )
    _window(filters.since, filters.until)
    ledger = open_ledger_or_exit(config.ledger)
    try:
        result = build_report(ledger, filters, by=by, baseline_model=config.baseline_model)
    except ledger_errors(config.ledger) as exc:
        exit_ledger_error(exc, config.ledger)
    click.echo(render(result, fmt), nl=False)


@click.command("simulate")
@click.argument("trace", type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config_path", envvar="THRIFTY_CONFIG", help="YAML config: the levers to try.")
@click.option("--router", "router_path", type=click.Path(exists=True), help="Trained router file to use.")
@click.option("--by", type=BY, help="Break totals down (namespace: by cache namespace).")
@click.option("--format", "fmt", type=FORMAT, default="table", show_default=True)
@click.option("--keep-ledger", type=click.Path(dir_okay=False), help="Write the simulated ledger here.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: if a tty).")
def simulate(
    trace: str,
    config_path: str | None,
    router_path: str | None,
    by: str | None,
    fmt: str,
    keep_ledger: str | None,
    progress: bool | None,
) -> None:
    """What thrifty would have saved on recorded traffic (JSONL of OpenAI chat requests)."""
    from thrifty.errors import ThriftyError
    from thrifty.ledger.report_render import render
    from thrifty.simulate import TraceError, run_simulation

    config = _load(config_path)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        outcome = run_simulation(
            trace, config, router_path=router_path, by=by, ledger_path=keep_ledger, progress=show
        )
    except (TraceError, ThriftyError) as exc:
        raise click.ClickException(str(exc)) from None
    title = f"thrifty simulate {Path(trace).name}"
    click.echo(render(outcome.report, fmt, title=title, scope=outcome.summary()), nl=False)
    for index, reason in outcome.skipped[:20]:
        click.echo(f"skipped trace request {index}: {reason}", err=True)
