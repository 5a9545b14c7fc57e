"""Renders a savings Report as a terminal table, JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import orjson

from thrifty.ledger.report import LEVERS, LOOKUP_GROUPS, Report, Totals, pct

FORMATS = ("table", "json", "csv")


def render(report: Report, fmt: str, *, title: str = "thrifty report", scope: str | None = None) -> str:
    if fmt == "json":
        return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        return render_csv(report)
    if fmt == "table":
        return render_table(report, title=title, scope=scope)
    raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def money(usd: float, *, signed: bool = False) -> str:
    sign = "−" if usd < 0 else ("+" if signed and usd > 0 else "")
    amount = abs(usd)
    text = f"{amount:,.2f}" if amount >= 1 or amount == 0 else f"{amount:,.4f}"
    if 0 < amount < 0.0001:
        text = f"{amount:.6f}"
    return f"{sign}${text}"


def percent(value: float | None, *, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} %"


def count(n: int) -> str:
    return f"{n:,}"


def _when(ts: float | None, default: str) -> str:
    if ts is None:
        return default
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _scope(report: Report) -> str:
    f = report.filters
    parts = [f"{_when(f.since, 'first row')} → {_when(f.until, 'now')}"]
    for name, value in (("tenant", f.tenant), ("key", f.key), ("model", f.model), ("route", f.route)):
        if value is not None:
            parts.append(f"{name}={value}")
    return " · ".join(parts)


def render_table(report: Report, *, title: str = "thrifty report", scope: str | None = None) -> str:
    t = report.totals
    out = [f"{title} — {scope or _scope(report)}", ""]
    out.extend(_waterfall_lines(report))
    out.append("")
    out.extend(_activity_lines(t))
    if report.model_mix:
        out.append("")
        out.extend(_model_mix_lines(report))
    if report.groups:
        out.append("")
        out.extend(_group_lines(report.groups, report.group_by or "group"))
    return "\n".join(out) + "\n"


def _waterfall_lines(report: Report) -> list[str]:
    base_label = "baseline" + (f" (all on {report.baseline_model})" if report.baseline_model else "")
    lines = [f"  {'':34} {'USD':>16} {'% of baseline':>14}"]
    for step in report.waterfall():
        if step.kind == "start":
            label = base_label
        elif step.kind == "lever":
            label = f"− {step.label}"
        elif step.kind == "overhead":
            label = f"+ {step.label}"
        else:
            label = f"= {step.label}"
        lines.append(f"  {label:34} {money(step.usd):>16} {percent(step.pct_of_baseline):>14}")
        if step.kind in ("start", "subtotal"):
            lines.append("  " + "─" * 66)
    t = report.totals
    saved = pct(t.net_saved_usd, t.baseline_usd)
    if saved is not None:
        lines.append(f"  saved {money(t.net_saved_usd)} ({money_pct(-saved)} vs baseline)")
    return lines


def _activity_lines(t: Totals) -> list[str]:
    hit_rate = pct(t.cache_hits, t.chat_answers)
    esc_rate = pct(t.escalated, t.answered)
    err_rate = pct(t.failed_requests, t.requests)
    lines = [
        f"  requests      {count(t.requests)} ({count(t.answered)} answered, {count(t.failed_requests)} "
        f"failed: {percent(err_rate)}) · {count(t.attempts)} ledger rows",
        f"  tokens        {count(t.input_tokens)} in ({count(t.cached_input_tokens)} provider-cached) · "
        f"{count(t.output_tokens)} out · {count(t.tokens_from_cache)} served from cache",
        f"  cache         {count(t.cache_hits)} hits of {count(t.chat_answers)} chat answers "
        f"({percent(hit_rate)}): {count(t.cache_hits_exact)} exact, {count(t.cache_hits_semantic)} semantic",
        f"  escalation    {count(t.escalated)} requests had a rejected cascade tier ({percent(esc_rate)}); "
        f"{count(t.rejected_attempts)} tiers rejected",
        f"  errors        {count(t.failed_attempts)} failed attempts "
        f"({percent(pct(t.failed_attempts, t.attempts - t.cache_hits))} of upstream calls)",
    ]
    if t.estimated_rows:
        lines.append(f"  estimated     {count(t.estimated_rows)} rows priced on locally counted tokens")
    return lines


def _model_mix_lines(report: Report) -> list[str]:
    total_cost = sum(m.cost_usd for m in report.model_mix)
    total_calls = sum(m.calls for m in report.model_mix)
    lines = [
        f"  {'model mix':32} {'calls':>8} {'share':>8} {'in tok':>12} {'out tok':>10} "
        f"{'spend':>12} {'share':>8}"
    ]
    for m in report.model_mix:
        lines.append(
            f"  {m.model[:32]:32} {count(m.calls):>8} {percent(pct(m.calls, total_calls)):>8} "
            f"{count(m.input_tokens):>12} {count(m.output_tokens):>10} {money(m.cost_usd):>12} "
            f"{percent(pct(m.cost_usd, total_cost)):>8}"
        )
    return lines


def _group_lines(groups: list[Totals], by: str) -> list[str]:
    lookup = by in LOOKUP_GROUPS
    header = (
        f"  {'by ' + by:28} {'requests':>9} {'baseline':>12} {'saved':>12} {'actual':>12} {'saved %':>8} "
        f"{'cache':>7} {'escal.':>7}"
    )
    lines = [header + (f" {'cache saved':>12} {'lookup ms':>10}" if lookup else "")]
    for g in groups:
        saved = pct(g.net_saved_usd, g.baseline_usd)
        line = (
            f"  {(g.group or '-')[:28]:28} {count(g.requests):>9} {money(g.baseline_usd):>12} "
            f"{money(g.net_saved_usd):>12} {money(g.actual_usd):>12} {percent(saved):>8} "
            f"{percent(pct(g.cache_hits, g.chat_answers), digits=0):>7} "
            f"{percent(pct(g.escalated, g.answered), digits=0):>7}"
        )
        lines.append(line + (_lookup_cells(g) if lookup else ""))
    return lines


def _lookup_cells(g: Totals) -> str:
    """The `--by namespace` columns: cache savings (exact + semantic) and mean lookup time."""
    return f" {money(g.saved_cache_usd):>12} {millis(g.cache_lookup_ms):>10}"


def millis(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


CSV_FIELDS: tuple[str, ...] = (
    "group", "requests", "answered", "failed_requests", "attempts", "cache_hits_exact",
    "cache_hits_semantic", "escalated", "input_tokens", "cached_input_tokens", "output_tokens",
    "baseline_usd", *(f"saved_{lever}" for lever in LEVERS), "answers_usd", "rejected_usd", "failed_usd",
    "other_usd", "actual_usd", "net_saved_usd", "saved_pct",
)  # fmt: skip
LOOKUP_CSV_FIELDS: tuple[str, ...] = ("chat_answers", "cache_hit_rate", "cache_lookup_ms")
"""Appended when grouping by namespace (the TOTAL row leaves `cache_lookup_ms` empty)."""


def render_csv(report: Report) -> str:
    """One row per group (when grouped) and a TOTAL row, wide columns, USD unrounded."""
    lookup = report.group_by in LOOKUP_GROUPS
    fields = CSV_FIELDS + LOOKUP_CSV_FIELDS if lookup else CSV_FIELDS
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for item in [*report.groups, report.totals]:
        row = item.to_dict(lookup=lookup and item is not report.totals)
        row["group"] = item.group if item is not report.totals else "TOTAL"
        writer.writerow(row)
    return buf.getvalue()


def money_pct(value: float) -> str:
    """A signed percentage with a typographic minus: −96.0 %."""
    return f"{'−' if value < 0 else '+'}{abs(value):.1f} %"
