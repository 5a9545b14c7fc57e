"""The JSON the dashboard draws: the `thrifty report` numbers plus time series and detail panels."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from thrifty.errors import InvalidRequest
from thrifty.ledger import insights
from thrifty.ledger.base import Ledger
from thrifty.ledger.report import Filters, build_report, parse_time

FILTER_PARAMS: tuple[str, ...] = ("tenant", "key", "model", "route")


def filters_from_query(query: Mapping[str, str], now: float) -> Filters:
    """Filters from `?since=7d&until=…&tenant=…&key=…&model=…&route=…` (`since=all`: no lower bound)."""
    bounds: dict[str, float | None] = {}
    for name in ("since", "until"):
        value = (query.get(name) or "").strip()
        if not value or value == "all":
            bounds[name] = None
            continue
        try:
            bounds[name] = parse_time(value, now)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param=name) from None
    since, until = bounds["since"], bounds["until"]
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("'until' must come after 'since'", param="until")
    extra = {name: query.get(name) or None for name in FILTER_PARAMS}
    return Filters(since=bounds["since"], until=bounds["until"], **extra)


def summary(ledger: Ledger, filters: Filters, *, baseline_model: str | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, as plain JSON-able data."""
    now = time.time()
    report = build_report(ledger, filters, by="model", baseline_model=baseline_model)
    span = insights.data_span(ledger, filters)
    bucket = insights.bucket_size(span) if span else 3600
    return {
        "generated_at": now,
        "report": report.to_dict(),
        "bucket_s": bucket,
        "series": insights.series(ledger, filters, bucket),
        "routes": [g.to_dict() for g in build_report(ledger, filters, by="route").groups],
        "top_keys": insights.top_keys(ledger, filters),
        "latency": insights.latency(ledger, filters),
        "recent_errors": insights.recent_errors(ledger, filters),
    }
