"""`thrifty simulate`: replay recorded traffic through the real pipeline and report what it saves.

Each trace line is `{"request": {chat body}, "response": {chat.completion, optional},
"timestamp": optional, "tenant": optional, "key": optional}` or a bare chat body. Requests run one
at a time in trace order through a Gateway built from the given config (every stage it enables), with
every provider replaced by a RecordedProvider and a throwaway SQLite ledger; the report is the same
SQL as `thrifty report`. Same trace + same config → same output.
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from thrifty.config import Config, DeploymentConfig, ModelConfig, ProviderConfig
from thrifty.errors import ThriftyError
from thrifty.ledger.report import Filters, Report, build_report
from thrifty.ledger.sqlite import SQLiteLedger
from thrifty.pricing.tokens import TokenCounter
from thrifty.providers.http import HttpClient
from thrifty.providers.recorded import Recorded, RecordedProvider, TraceBook
from thrifty.types import Tenant

RECORDED_PROVIDER = "recorded"
ROUTER_FIELDS = ("router_path", "model_path", "path", "router")


class TraceError(ValueError):
    """The trace file cannot be read; the message names the line."""


@dataclass(slots=True)
class Outcome:
    report: Report
    replayed: int = 0
    with_answers: int = 0
    estimated: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.replayed} requests replayed, {self.with_answers} with recorded answers, "
            f"{self.estimated} rows on estimated tokens"
        )
        return text + (f", {len(self.skipped)} skipped" if self.skipped else "")


def read_trace(path: str | Path) -> list[Recorded]:
    entries: list[Recorded] = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise TraceError(f"{path}:{number}: not JSON ({exc})") from None
            entries.append(parse_line(data, len(entries), f"{path}:{number}"))
    if not entries:
        raise TraceError(f"{path}: the trace has no requests")
    return entries


def parse_line(data: Any, index: int, where: str) -> Recorded:
    if not isinstance(data, dict):
        raise TraceError(f"{where}: expected a JSON object")
    wrapped = "request" in data
    request = data["request"] if wrapped else data
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        raise TraceError(f"{where}: a chat request needs a `messages` list")
    if not isinstance(request.get("model"), str):
        raise TraceError(f"{where}: a chat request needs a `model`")
    response = data.get("response") if wrapped else None
    if response is not None and not isinstance(response, dict):
        raise TraceError(f"{where}: `response` must be a chat.completion object")
    return Recorded(
        index=index,
        request=request,
        response=response,
        timestamp=_timestamp(data.get("timestamp") if wrapped else None, where),
        tenant=_text(data.get("tenant")) if wrapped else None,
        key=_text(data.get("key")) if wrapped else None,
    )


def _timestamp(value: Any, where: str) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise TraceError(f"{where}: cannot read timestamp {value!r}") from None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def simulation_config(
    config: Config, entries: list[Recorded], router_path: str | None, workdir: Path
) -> Config:
    """The user's config with every model the trace names reachable (through the recorded provider)
    and its local state (SQLite cache) in `workdir`, so a simulation starts cold and touches nothing."""
    sim = config.model_copy(deep=True)
    cache = getattr(sim, "cache", None)
    if cache is not None and getattr(cache, "backend", None) == "sqlite":
        sim.cache = cache.model_copy(update={"path": str(workdir / "cache.db")})  # type: ignore[attr-defined]
    reachable = sim.model_names()
    for entry in entries:
        model = entry.request["model"]
        if model not in reachable:
            sim.providers.setdefault(
                RECORDED_PROVIDER, ProviderConfig(type="openai", base_url="http://recorded")
            )
            sim.models[model] = ModelConfig(deployments=[DeploymentConfig(provider=RECORDED_PROVIDER)])
            reachable.add(model)
    if router_path is not None:
        _set_router(sim, router_path)
    return sim


def _set_router(config: Config, router_path: str) -> None:
    routing = getattr(config, "routing", None)
    if routing is None:
        raise TraceError("--router needs a build with the routing stage (a `routing:` config section)")
    for name in ROUTER_FIELDS:
        if name in type(routing).model_fields:
            config.routing = routing.model_copy(update={name: router_path})
            return
    raise TraceError("the `routing:` config section has no router file setting")


async def _replay(
    gateway: Any, book: TraceBook, entries: list[Recorded], outcome: Outcome, tick: Any
) -> None:
    await gateway.start()
    try:
        for entry in entries:
            token = book.current.set(entry)
            tenant = Tenant(id=entry.tenant or "default", key_id=entry.key)
            try:
                await gateway.chat(dict(entry.request), tenant, request_id=f"sim-{entry.index:06d}")
                outcome.replayed += 1
                outcome.with_answers += entry.response is not None
            except ThriftyError as exc:
                outcome.skipped.append((entry.index, exc.message if hasattr(exc, "message") else str(exc)))
            finally:
                book.current.reset(token)
            tick(1)
    finally:
        await gateway.aclose()


def run_simulation(
    trace: str | Path,
    config: Config,
    *,
    router_path: str | None = None,
    by: str | None = None,
    ledger_path: str | None = None,
    progress: bool = False,
) -> Outcome:
    from thrifty.gateway import Gateway

    entries = read_trace(trace)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="thrifty-sim-")))
        sim = simulation_config(config, entries, router_path, workdir)
        if ledger_path is None:
            ledger_path = str(workdir / "simulated.db")
        elif Path(ledger_path).exists():
            raise TraceError(f"{ledger_path} exists: --keep-ledger writes a new file")
        ledger = SQLiteLedger(ledger_path)
        book = TraceBook(entries, TokenCounter())
        http = HttpClient()
        providers = {name: RecordedProvider(name, conf, http, book) for name, conf in sim.providers.items()}
        gateway = Gateway(sim, ledger=ledger, providers=providers)
        outcome = Outcome(report=Report(filters=Filters(), totals=None))  # type: ignore[arg-type]
        tick = _progress(stack, len(entries)) if progress else (lambda n: None)
        asyncio.run(_replay(gateway, book, entries, outcome, tick))
        outcome.report = build_report(ledger, Filters(), by=by, baseline_model=sim.baseline_model)
        outcome.estimated = outcome.report.totals.estimated_rows
    return outcome


def _progress(stack: ExitStack, total: int) -> Any:
    import sys

    import click

    bar = stack.enter_context(click.progressbar(length=total, label="replaying", file=sys.stderr))
    return bar.update
