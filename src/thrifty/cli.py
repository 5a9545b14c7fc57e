"""The `thrifty` command line."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, NoReturn

import click

from thrifty.errors import ConfigError

if TYPE_CHECKING:
    from thrifty.config import Config
    from thrifty.gateway import Gateway


def _load(config_path: str | None, *, files: bool = False):
    """The config; with `files`, the router, gate and verifier files it names are read and checked too."""
    from thrifty import config as config_mod

    try:
        config = config_mod.load(config_path)
        if files:
            config_mod.check_files(config)
        return config
    except ConfigError as exc:
        _exit_with(exc)


def _exit_with(exc: ConfigError) -> NoReturn:
    for path, message in exc.errors:
        click.echo(f"config error: {path}: {message}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(package_name="thrifty")
def main() -> None:
    """thrifty: an OpenAI-compatible gateway that cuts your LLM bill."""


@main.command()
@click.option("--config", "config_path", envvar="THRIFTY_CONFIG", help="YAML config file.")
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default from config: 4000).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Worker processes (default from config: 1)."
)
@click.option("--log-level", default="warning", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    log_level: str,
    log_format: str,
) -> None:
    """Run the gateway HTTP server."""
    import uvicorn

    from thrifty.logging_setup import config_secrets, log_config
    from thrifty.server.http_protocol import guarded_http_protocol

    config = _load(config_path, files=True)
    host = host or config.server.host
    port = config.server.port if port is None else port
    workers = config.server.workers if workers is None else workers
    workers_error = config.workers_error(workers)
    if workers_error:
        _exit_with(ConfigError([("--workers", workers_error)]))
    if config_path:
        os.environ["THRIFTY_CONFIG"] = os.path.abspath(config_path)
    gateway = _gateway(config)  # what only building finds fails here, once, not in every worker
    if workers > 1:  # each worker builds its own; this one only checked that building works
        import asyncio

        asyncio.run(gateway.aclose())
    _check_bindable(host, port)
    providers = ", ".join(config.providers) or "none (set OPENAI_API_KEY / ANTHROPIC_API_KEY or a config)"
    click.echo(
        f"thrifty listening on http://{host}:{port}/v1 — providers: {providers}; "
        f"ledger: {config.ledger.path if config.ledger.backend == 'sqlite' else config.ledger.backend}",
        err=True,
    )
    common = dict(
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_format, log_level, config_secrets(config)),
        access_log=False,
        timeout_graceful_shutdown=config.server.graceful_shutdown_s,
        timeout_keep_alive=5,  # idle keep-alive connections are closed (slow or vanished clients)
        limit_concurrency=None,
        http=guarded_http_protocol(config.server.max_header_bytes, config.server.header_timeout_s),
    )
    if workers > 1:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics aggregates all workers
            import tempfile

            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="thrifty-metrics-")
        uvicorn.run("thrifty.server.app:create_app_from_env", factory=True, workers=workers, **common)
        return
    from thrifty.server.app import create_app

    uvicorn.run(create_app(gateway), **common)


def _check_bindable(host: str, port: int) -> None:
    """Fail with one line, before "listening" is printed, when the address cannot be bound (in use,
    not this machine's); uvicorn binds it for real right after."""
    import socket

    if port == 0:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)


def _gateway(config: Config) -> Gateway:
    """The Gateway, built before the server starts: what only building finds (a model file that does
    not load, a baseline with no price) is a config error, not a traceback after "listening"."""
    from thrifty.gateway import Gateway

    try:
        return Gateway(config)
    except ConfigError as exc:
        _exit_with(exc)


@main.group("config")
def config_group() -> None:
    """Configuration commands."""


@config_group.command("check")
@click.argument("path", required=False)
def config_check(path: str | None) -> None:
    """Validate a config file (and the model files it names); print every error with its key path."""
    config = _load(path, files=True)
    models = config.model_names()
    click.echo(f"ok: {len(config.providers)} providers, {len(models)} models reachable")


@main.command()
@click.option("--config", "config_path", envvar="THRIFTY_CONFIG")
@click.option("--all", "show_all", is_flag=True, help="Show the whole catalog, not only reachable models.")
def models(config_path: str | None, show_all: bool) -> None:
    """The price catalog (USD per 1M tokens)."""
    config = _load(config_path)
    catalog = config.catalog()
    reachable = config.model_names()
    click.echo(f"{'model':48} {'provider':10} {'input':>8} {'output':>8} {'cached':>8}  reachable")
    for price in sorted(catalog, key=lambda p: (p.provider or "", p.model)):
        if not show_all and reachable and price.model not in reachable:
            continue
        cached = "-" if price.cached_input is None else f"{price.cached_input:8.3f}"
        click.echo(
            f"{price.model:48} {price.provider or '-':10} {price.input:8.3f} {price.output:8.3f} "
            f"{cached:>8}  {'yes' if price.model in reachable else 'no'}"
        )
    if catalog.as_of:
        click.echo(f"(prices as of {catalog.as_of}; override in config under `prices:`)")


@main.group("ledger")
def ledger_group() -> None:
    """Ledger commands."""


@ledger_group.command("tail")
@click.option("--config", "config_path", envvar="THRIFTY_CONFIG")
@click.option("-n", "count", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def ledger_tail(config_path: str | None, count: int, as_json: bool) -> None:
    """Show the most recent ledger rows."""
    import orjson

    from thrifty.report_cli import exit_ledger_error, ledger_errors, open_ledger_or_exit

    config = _load(config_path)
    ledger = open_ledger_or_exit(config.ledger)
    try:
        rows = list(reversed(ledger.rows(limit=count, newest_first=True)))
    except ledger_errors(config.ledger) as exc:
        exit_ledger_error(exc, config.ledger)
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(
        f"{'time':19} {'request':28} {'#':>2} {'status':9} {'model':26} {'in':>7} {'out':>6} "
        f"{'cost $':>10} {'baseline $':>10} {'ms':>7}"
    )
    for r in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["ts"]))
        est = "~" if r["estimated"] else " "
        click.echo(
            f"{stamp:19} {r['request_id'][:28]:28} {r['attempt']:>2} {r['status']:9} "
            f"{(r['served_model'] or '-')[:26]:26} {r['input_tokens']:>7} {r['output_tokens']:>6}"
            f"{est}{r['cost_usd']:>10.6f} {r['baseline_cost_usd']:>10.6f} {r['latency_ms']:>7.1f}"
        )


from thrifty import report_cli  # noqa: E402

main.add_command(report_cli.report)
main.add_command(report_cli.simulate)

from thrifty import keys_cli  # noqa: E402

main.add_command(keys_cli.keys)

from thrifty import route_cli  # noqa: E402

main.add_command(route_cli.route)

from thrifty import cache_cli, cache_cross_cli  # noqa: E402

cache_cli.cache_group.add_command(cache_cross_cli.train_cross_command)
main.add_command(cache_cli.cache_group)

from thrifty import compress_cli  # noqa: E402

main.add_command(compress_cli.compress_group)

from thrifty import batch_cli  # noqa: E402

main.add_command(batch_cli.batch_group)

if __name__ == "__main__":
    main()
