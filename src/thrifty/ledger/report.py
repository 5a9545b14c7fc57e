"""The savings report: baseline → what each lever saved → actual spend, as SQL sums over ledger rows.

Money adds up exactly: on a final row, baseline − Σ saved_* = that row's cost; the actual spend is the
sum of `cost_usd` over ALL rows, so the waterfall also shows what was paid for answers that were not
used (rejected cascade tiers, failed attempts). Nothing is estimated at report time.

The SQL is plain and parameterised (`?` placeholders, standard aggregates) so every Ledger backend can
run it through `Ledger.query`. The one dialect-specific piece, reading a field of the `meta` JSON (to
group by cache namespace), is an expression the ledger writes (`Ledger.meta_text` / `meta_number`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from thrifty.ledger.base import Ledger

LEVERS: tuple[str, ...] = (
    "routing", "cascade", "cache_exact", "cache_semantic", "compression", "prompt_cache", "batching",
)  # fmt: skip
LEVER_LABELS: dict[str, str] = {
    "routing": "routing",
    "cascade": "cascades",
    "cache_exact": "exact cache",
    "cache_semantic": "semantic cache",
    "compression": "compression",
    "prompt_cache": "provider prompt caching",
    "batching": "batching",
}
GROUP_COLUMNS: dict[str, str] = {
    "tenant": "tenant_id",
    "key": "key_id",
    "model": "served_model",
    "route": "route",
}
META_GROUPS: dict[str, str] = {"namespace": "cache_namespace"}
"""Groupings on a top-level field of the `meta` JSON (the cache stage writes `cache_namespace` on every
row of a request it looked up); rows without it group as "(none)"."""
GROUP_BY: tuple[str, ...] = (*GROUP_COLUMNS, *META_GROUPS)
LOOKUP_GROUPS: frozenset[str] = frozenset({"namespace"})
"""Groupings whose totals also carry `cache_lookup_ms`."""
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: float) -> float:
    """Epoch seconds from `7d` / `24h` / `30m` / `2w` (that long before `now`), `now`, or an ISO date or
    datetime (naive ones are UTC). Raises ValueError with a message a user can act on."""
    when = _parse_time(text.strip(), now)
    if not 0 <= when <= _LAST_TIME:
        raise ValueError(f"time {text.strip()!r} is out of range: from 1970-01-01 to 9999-12-30")
    return when


_LAST_TIME = datetime(9999, 12, 30, tzinfo=UTC).timestamp()
"""The latest time a report can name (a day short of what `datetime` can hold, for any time zone)."""


def _parse_time(text: str, now: float) -> float:
    if text.lower() == "now":
        return now
    match = _RELATIVE.match(text.lower())
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use an ISO date (2025-01-31, 2025-01-31T12:00) or a relative "
            "span like 30m, 24h, 7d, 2w"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


@dataclass(frozen=True, slots=True)
class Filters:
    """Which ledger rows a report covers. `since` inclusive, `until` exclusive (epoch seconds)."""

    since: float | None = None
    until: float | None = None
    tenant: str | None = None
    key: str | None = None
    model: str | None = None
    """Served model."""
    route: str | None = None

    def where(self, *extra: str) -> tuple[str, list[Any]]:
        """A ` WHERE …` clause (or "") and its parameters; `extra` conditions are ANDed in."""
        conds: list[str] = list(extra)
        params: list[Any] = []
        for cond, value in (
            ("ts >= ?", self.since),
            ("ts < ?", self.until),
            ("tenant_id = ?", self.tenant),
            ("key_id = ?", self.key),
            ("served_model = ?", self.model),
            ("route = ?", self.route),
        ):
            if value is not None:
                conds.append(cond)
                params.append(value)
        return (" WHERE " + " AND ".join(conds) if conds else ""), params


def _tier_rejected(table: str = "") -> str:
    """SQL condition: the row (of `table`, an alias, when given) is a cascade tier a gate refused.

    The cascade books such a tier `rejected` with the reason `gate <name>: …`. Other `rejected` rows are
    paid-for calls that are not tiers: a judge gate's grading call (reason `judge`), a micro-batch item
    re-sent alone. They count in the spend, never as escalations."""
    col = f"{table}." if table else ""
    return f"{col}status = 'rejected' AND {col}error LIKE 'gate %'"


_ESCALATED = (
    "final = 1 AND EXISTS (SELECT 1 FROM ledger AS tier "
    f"WHERE tier.request_id = ledger.request_id AND {_tier_rejected('tier')})"
)
"""SQL condition: the final row of a request that had a rejected tier. Counting these counts each
escalated request once, under its final row's group (`--by route`: the tier that answered), so an
escalation share never exceeds 100 %. The sub-query is not filtered: the rejected tier may lie outside
the selected rows (`--route cascade:tier2` still sees that tier 1 was refused)."""

_SUMS = f"""
    COUNT(*) AS attempts,
    COUNT(DISTINCT request_id) AS requests,
    COUNT(DISTINCT CASE WHEN final = 1 THEN request_id END) AS answered,
    COUNT(DISTINCT CASE WHEN {_ESCALATED} THEN request_id END) AS escalated,
    COALESCE(SUM(CASE WHEN final = 1 AND kind = 'chat' THEN 1 ELSE 0 END), 0) AS chat_answers,
    COALESCE(SUM(CASE WHEN status = 'cache_hit' AND saved_cache_semantic <= 0 THEN 1 ELSE 0 END), 0)
        AS cache_hits_exact,
    COALESCE(SUM(CASE WHEN status = 'cache_hit' AND saved_cache_semantic > 0 THEN 1 ELSE 0 END), 0)
        AS cache_hits_semantic,
    COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS failed_attempts,
    COALESCE(SUM(CASE WHEN {_tier_rejected()} THEN 1 ELSE 0 END), 0) AS rejected_attempts,
    COALESCE(SUM(CASE WHEN estimated = 1 THEN 1 ELSE 0 END), 0) AS estimated_rows,
    COALESCE(SUM(CASE WHEN status <> 'cache_hit' THEN input_tokens ELSE 0 END), 0) AS input_tokens,
    COALESCE(SUM(CASE WHEN status <> 'cache_hit' THEN cached_input_tokens ELSE 0 END), 0)
        AS cached_input_tokens,
    COALESCE(SUM(CASE WHEN status <> 'cache_hit' THEN output_tokens ELSE 0 END), 0) AS output_tokens,
    COALESCE(SUM(CASE WHEN status <> 'cache_hit' THEN reasoning_tokens ELSE 0 END), 0) AS reasoning_tokens,
    COALESCE(SUM(CASE WHEN status = 'cache_hit' THEN input_tokens + output_tokens ELSE 0 END), 0)
        AS tokens_from_cache,
    COALESCE(SUM(baseline_cost_usd), 0) AS baseline_usd,
    COALESCE(SUM(saved_routing), 0) AS saved_routing,
    COALESCE(SUM(saved_cascade), 0) AS saved_cascade,
    COALESCE(SUM(saved_cache_exact), 0) AS saved_cache_exact,
    COALESCE(SUM(saved_cache_semantic), 0) AS saved_cache_semantic,
    COALESCE(SUM(saved_compression), 0) AS saved_compression,
    COALESCE(SUM(saved_prompt_cache), 0) AS saved_prompt_cache,
    COALESCE(SUM(saved_batching), 0) AS saved_batching,
    COALESCE(SUM(CASE WHEN final = 1 THEN cost_usd ELSE 0 END), 0) AS answers_usd,
    COALESCE(SUM(CASE WHEN status = 'rejected' THEN cost_usd ELSE 0 END), 0) AS rejected_usd,
    COALESCE(SUM(CASE WHEN status = 'error' THEN cost_usd ELSE 0 END), 0) AS failed_usd,
    COALESCE(SUM(CASE WHEN final = 0 AND status NOT IN ('rejected', 'error') THEN cost_usd ELSE 0 END), 0)
        AS other_usd,
    COALESCE(SUM(cost_usd), 0) AS actual_usd
"""


@dataclass(slots=True)
class Totals:
    """Sums over one set of ledger rows (all of them, or one group)."""

    attempts: int = 0
    requests: int = 0
    answered: int = 0
    escalated: int = 0
    chat_answers: int = 0
    cache_hits_exact: int = 0
    cache_hits_semantic: int = 0
    failed_attempts: int = 0
    rejected_attempts: int = 0
    estimated_rows: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    tokens_from_cache: int = 0
    baseline_usd: float = 0.0
    saved_routing: float = 0.0
    saved_cascade: float = 0.0
    saved_cache_exact: float = 0.0
    saved_cache_semantic: float = 0.0
    saved_compression: float = 0.0
    saved_prompt_cache: float = 0.0
    saved_batching: float = 0.0
    answers_usd: float = 0.0
    rejected_usd: float = 0.0
    failed_usd: float = 0.0
    other_usd: float = 0.0
    actual_usd: float = 0.0
    cache_lookup_ms: float | None = None
    """Mean cache lookup time over final rows that carry `meta.cache_lookup_ms`; computed (and shown)
    only when grouping by namespace, None otherwise or when no final row was looked up."""
    group: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Totals:
        known = {k: v for k, v in row.items() if k in cls.__dataclass_fields__}
        for name, f in cls.__dataclass_fields__.items():
            if name in known and name != "group" and known[name] is not None:
                known[name] = int(known[name]) if f.type == "int" else float(known[name])
        return cls(**known)

    def saved(self, lever: str) -> float:
        return float(getattr(self, f"saved_{lever}"))

    @property
    def saved_usd(self) -> float:
        return sum(self.saved(lever) for lever in LEVERS)

    @property
    def net_saved_usd(self) -> float:
        """Baseline − actual spend (levers' savings less what unused attempts cost)."""
        return self.baseline_usd - self.actual_usd

    @property
    def unattributed_usd(self) -> float:
        """Baseline − savings − cost of the answers: 0 when every row keeps the ledger invariant."""
        return self.baseline_usd - self.saved_usd - self.answers_usd

    @property
    def cache_hits(self) -> int:
        return self.cache_hits_exact + self.cache_hits_semantic

    @property
    def failed_requests(self) -> int:
        return self.requests - self.answered

    @property
    def saved_cache_usd(self) -> float:
        return self.saved_cache_exact + self.saved_cache_semantic

    def to_dict(self, *, lookup: bool = False) -> dict[str, Any]:
        """Every figure and rate; `cache_lookup_ms` only with `lookup` (a grouping by namespace)."""
        out = asdict(self)
        if not lookup:
            del out["cache_lookup_ms"]
        out.update(
            saved_usd=self.saved_usd,
            net_saved_usd=self.net_saved_usd,
            unattributed_usd=self.unattributed_usd,
            cache_hits=self.cache_hits,
            failed_requests=self.failed_requests,
            saved_pct=pct(self.net_saved_usd, self.baseline_usd),
            cache_hit_rate=ratio(self.cache_hits, self.chat_answers),
            escalation_rate=ratio(self.escalated, self.answered),
            error_rate=ratio(self.failed_requests, self.requests),
            attempt_error_rate=ratio(self.failed_attempts, self.attempts - self.cache_hits),
        )
        return out


@dataclass(slots=True)
class Step:
    """One bar of the waterfall: a signed amount in USD and its share of the baseline."""

    key: str
    label: str
    usd: float
    pct_of_baseline: float | None
    kind: str
    """"start" (baseline), "lever" (a saving, negative), "overhead" (spend on unused attempts, positive),
    "subtotal" or "end" (actual spend)."""


@dataclass(slots=True)
class ModelUse:
    model: str
    calls: int
    answers: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(slots=True)
class Report:
    filters: Filters
    totals: Totals
    groups: list[Totals] = field(default_factory=list)
    group_by: str | None = None
    model_mix: list[ModelUse] = field(default_factory=list)
    baseline_model: str | None = None

    def waterfall(self) -> list[Step]:
        t = self.totals
        base = t.baseline_usd
        steps = [Step("baseline", "baseline", base, pct(base, base), "start")]
        for lever in LEVERS:
            saved = t.saved(lever)
            steps.append(Step(lever, LEVER_LABELS[lever], -saved, pct(saved, base), "lever"))
        if abs(t.unattributed_usd) > 1e-9:
            gap = t.unattributed_usd
            steps.append(Step("unattributed", "unattributed", -gap, pct(gap, base), "lever"))
        steps.append(Step("answers", "answers served", t.answers_usd, pct(t.answers_usd, base), "subtotal"))
        for key, label, usd in (
            ("rejected", "rejected cascade tiers", t.rejected_usd),
            ("failed", "failed attempts", t.failed_usd),
            ("other", "other unused attempts", t.other_usd),
        ):
            if key != "other" or abs(usd) > 1e-12:
                steps.append(Step(key, label, usd, pct(usd, base), "overhead"))
        steps.append(Step("actual", "actual spend", t.actual_usd, pct(t.actual_usd, base), "end"))
        return steps

    def to_dict(self) -> dict[str, Any]:
        return {
            "filters": asdict(self.filters),
            "baseline_model": self.baseline_model,
            "totals": self.totals.to_dict(),
            "waterfall": [asdict(s) for s in self.waterfall()],
            "model_mix": [asdict(m) for m in self.model_mix],
            "group_by": self.group_by,
            "groups": [g.to_dict(lookup=self.group_by in LOOKUP_GROUPS) for g in self.groups],
        }


def pct(part: float, whole: float) -> float | None:
    return None if not whole else 100.0 * part / whole


def ratio(part: int, whole: int) -> float | None:
    return None if not whole else part / whole


def totals(ledger: Ledger, filters: Filters) -> Totals:
    where, params = filters.where()
    rows = ledger.query(f"SELECT {_SUMS} FROM ledger{where}", params)
    return Totals.from_row(rows[0]) if rows else Totals()


def group_expression(ledger: Ledger, by: str) -> str:
    """The SQL expression rows are grouped on for `--by <by>` (NULL → "(none)" in `grouped`)."""
    if by in GROUP_COLUMNS:
        return GROUP_COLUMNS[by]
    if by in META_GROUPS:
        return ledger.meta_text(META_GROUPS[by])
    raise ValueError(f"cannot group by {by!r}: choose one of {', '.join(GROUP_BY)}")


def lookup_mean(ledger: Ledger) -> str:
    """SQL aggregate: mean `meta.cache_lookup_ms` over final rows (AVG skips rows without it)."""
    return f"AVG(CASE WHEN final = 1 THEN {ledger.meta_number('cache_lookup_ms')} END) AS cache_lookup_ms"


def grouped(ledger: Ledger, filters: Filters, by: str) -> list[Totals]:
    """Totals per tenant / key / model / route / cache namespace, largest spend first."""
    group = f"COALESCE({group_expression(ledger, by)}, '(none)')"
    sums = f"{_SUMS}, {lookup_mean(ledger)}" if by in LOOKUP_GROUPS else _SUMS
    where, params = filters.where()
    sql = f"SELECT {group} AS grp, {sums} FROM ledger{where} GROUP BY {group} ORDER BY actual_usd DESC, grp"
    out = []
    for row in ledger.query(sql, params):
        item = Totals.from_row(row)
        item.group = str(row["grp"])
        out.append(item)
    return out


def model_mix(ledger: Ledger, filters: Filters) -> list[ModelUse]:
    """Upstream calls per served model (cache answers excluded); costs sum to the actual spend."""
    where, params = filters.where("status <> 'cache_hit'")
    sql = (
        "SELECT COALESCE(served_model, '(none)') AS model, COUNT(*) AS calls, "
        "COALESCE(SUM(CASE WHEN final = 1 THEN 1 ELSE 0 END), 0) AS answers, "
        "COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens, "
        f"COALESCE(SUM(cost_usd), 0) AS cost_usd FROM ledger{where} "
        "GROUP BY COALESCE(served_model, '(none)') ORDER BY cost_usd DESC, model"
    )
    return [
        ModelUse(
            model=str(r["model"]),
            calls=int(r["calls"]),
            answers=int(r["answers"]),
            input_tokens=int(r["input_tokens"]),
            output_tokens=int(r["output_tokens"]),
            cost_usd=float(r["cost_usd"]),
        )
        for r in ledger.query(sql, params)
    ]


def build_report(
    ledger: Ledger, filters: Filters, *, by: str | None = None, baseline_model: str | None = None
) -> Report:
    return Report(
        filters=filters,
        totals=totals(ledger, filters),
        groups=grouped(ledger, filters, by) if by else [],
        group_by=by,
        model_mix=model_mix(ledger, filters),
        baseline_model=baseline_model,
    )
