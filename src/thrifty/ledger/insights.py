"""Dashboard panels beyond the report totals: spend over time, top keys, latency, recent errors.

Same filters and the same portable SQL as the report (`?` placeholders, run through `Ledger.query`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from thrifty.ledger.base import Ledger
from thrifty.ledger.report import LEVERS, Filters

BUCKETS_S: tuple[int, ...] = (10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
MAX_POINTS = 60
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float


def data_span(ledger: Ledger, filters: Filters) -> Span | None:
    """The time range of the rows the filters select (None when there are none)."""
    where, params = filters.where()
    row = ledger.query(f"SELECT MIN(ts) AS lo, MAX(ts) AS hi FROM ledger{where}", params)[0]
    if row["lo"] is None:
        return None
    start, end = float(row["lo"]), float(row["hi"])
    return Span(start, max(end, start + 1))


def bucket_size(span: Span) -> int:
    """The smallest bucket that draws the span in at most MAX_POINTS points."""
    seconds = span.end - span.start
    for size in BUCKETS_S:
        if seconds / size <= MAX_POINTS:
            return size
    return BUCKETS_S[-1]


def series(ledger: Ledger, filters: Filters, bucket_s: int) -> list[dict[str, Any]]:
    """Per time bucket (epoch start, UTC): spend, baseline, savings by lever, requests, cache hits."""
    where, params = filters.where()
    saved = ", ".join(f"COALESCE(SUM(saved_{lever}), 0) AS saved_{lever}" for lever in LEVERS)
    sql = (
        "SELECT FLOOR(ts / ?) AS bucket, COALESCE(SUM(cost_usd), 0) AS actual_usd, "
        "COALESCE(SUM(baseline_cost_usd), 0) AS baseline_usd, "
        f"{saved}, "
        "COALESCE(SUM(CASE WHEN final = 1 THEN 1 ELSE 0 END), 0) AS answered, "
        "COALESCE(SUM(CASE WHEN status = 'cache_hit' THEN 1 ELSE 0 END), 0) AS cache_hits, "
        "COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0) AS errors "
        f"FROM ledger{where} GROUP BY 1 ORDER BY 1"
    )
    rows = ledger.query(sql, [bucket_s, *params])
    out = []
    for r in rows:
        point: dict[str, Any] = {"ts": int(r["bucket"]) * bucket_s}
        for key, value in r.items():
            if key != "bucket":
                point[key] = float(value) if key.endswith("_usd") or key.startswith("saved_") else int(value)
        out.append(point)
    return out


def top_keys(ledger: Ledger, filters: Filters, limit: int = 10) -> list[dict[str, Any]]:
    """Virtual keys (and their tenant) by actual spend."""
    where, params = filters.where()
    sql = (
        "SELECT tenant_id, COALESCE(key_id, '(none)') AS key_id, COUNT(DISTINCT request_id) AS requests, "
        "COALESCE(SUM(cost_usd), 0) AS actual_usd, COALESCE(SUM(baseline_cost_usd), 0) AS baseline_usd "
        f"FROM ledger{where} GROUP BY tenant_id, COALESCE(key_id, '(none)') "
        "ORDER BY actual_usd DESC, requests DESC LIMIT ?"
    )
    return [
        {
            "tenant_id": r["tenant_id"],
            "key_id": r["key_id"],
            "requests": int(r["requests"]),
            "actual_usd": float(r["actual_usd"]),
            "baseline_usd": float(r["baseline_usd"]),
        }
        for r in ledger.query(sql, [*params, int(limit)])
    ]


def latency(ledger: Ledger, filters: Filters) -> dict[str, Any]:
    """Percentiles (nearest rank) of end-to-end latency over answered requests, and their mean."""
    where, params = filters.where("final = 1")
    row = ledger.query(f"SELECT COUNT(*) AS n, AVG(latency_ms) AS mean FROM ledger{where}", params)[0]
    n = int(row["n"] or 0)
    out: dict[str, Any] = {"count": n, "mean_ms": float(row["mean"]) if n else None}
    for p in PERCENTILES:
        if not n:
            out[f"p{p}_ms"] = None
            continue
        offset = max(math.ceil(p / 100 * n) - 1, 0)
        sql = f"SELECT latency_ms FROM ledger{where} ORDER BY latency_ms LIMIT 1 OFFSET ?"
        out[f"p{p}_ms"] = float(ledger.query(sql, [*params, offset])[0]["latency_ms"])
    return out


def recent_errors(ledger: Ledger, filters: Filters, limit: int = 20) -> list[dict[str, Any]]:
    """The newest failed attempts."""
    where, params = filters.where("status = 'error'")
    sql = (
        "SELECT ts, request_id, tenant_id, key_id, served_model, deployment, http_status, error "
        f"FROM ledger{where} ORDER BY ts DESC LIMIT ?"
    )
    return ledger.query(sql, [*params, int(limit)])
