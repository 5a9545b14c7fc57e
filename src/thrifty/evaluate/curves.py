"""Printable summaries of a curve: quality at fixed shares of calls / cost."""

from __future__ import annotations

from typing import Any

from thrifty.evaluate.metrics import Curve


def table(curve: Curve, axis: str = "calls", steps: int = 10) -> list[dict[str, Any]]:
    """PGR and quality at x = 0, 1/steps, …, 1 of the axis (budget semantics, see metrics.py)."""
    grid, pgr = curve.pgr_on(axis)
    ref = curve.ref
    out = []
    for i in range(steps + 1):
        x = i / steps
        k = min(round(x * (len(grid) - 1)), len(grid) - 1)
        g = float(pgr[k])
        out.append({axis + "_share": x, "pgr": g, "quality": ref.q_weak + g * (ref.q_strong - ref.q_weak)})
    return out


def fmt_share(value: float | None) -> str:
    return "never" if value is None else f"{100 * value:5.1f} %"
