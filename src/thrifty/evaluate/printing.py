"""Human-readable output of `thrifty route eval` / `calibrate` (the same figures `--json` prints)."""

from __future__ import annotations

from typing import Any

import click

from thrifty.evaluate.curves import fmt_share
from thrifty.evaluate.metrics import AXES


def _pct(value: float | None) -> str:
    return "   n/a" if value is None else f"{100 * value:5.1f} %"


def _axis_of(s: dict[str, Any]) -> str:
    """The headline axis of a figures dict (calls when it names none, e.g. a cascade's)."""
    return str(s.get("headline", {}).get("axis", "calls"))


def _other(axis: str) -> str:
    return next(a for a in AXES if a != axis)


def _key(figure: str, axis: str) -> str:
    """JSON key of a figure on an axis: `apgr` is the calls axis, `apgr_cost` the cost axis."""
    return figure if axis == "calls" else f"{figure}_{axis}"


def _figures(name: str, s: dict[str, Any]) -> None:
    """APGR and CPTs on the headline axis, then the other axis's APGR and CPT(80 %) after a bar."""
    axis = _axis_of(s)
    other = _other(axis)
    click.echo(
        f"  {name:28} APGR {s[_key('apgr', axis)]:.3f}  CPT(50%) {fmt_share(s[_key('cpt50', axis)])}"
        f"  CPT(80%) {fmt_share(s[_key('cpt80', axis)])}"
        f"  | {other} axis: APGR {s[_key('apgr', other)]:.3f}"
        f"  CPT(80%) {fmt_share(s[_key('cpt80', other)])}"
    )


def _baselines(b: dict[str, Any]) -> None:
    click.echo("baselines (fold 4):")
    _figures("random router", b["random"])
    for key in ("cheapest", "best_single", "oracle"):
        p = b[key]
        click.echo(
            f"  {p['policy']:28} quality {p['quality']:.3f}  cost {_pct(p['cost_share_of_strong'])} of strong"
            f"  (${p['cost_usd']:.4f})  PGR {p['pgr']:.2f}"
        )


def _curve(rows: list[dict[str, Any]], axis: str) -> None:
    click.echo(
        f"cost/quality curve ({axis} axis): "
        + "  ".join(f"{100 * r[axis + '_share']:.0f}%→{r['quality']:.3f}" for r in rows)
    )


def print_router(r: dict[str, Any]) -> None:
    click.echo(
        f"{r['data']}: train {r['rows']['train']} rows (folds 0–3), test {r['rows']['test']} rows (fold 4)"
    )
    click.echo(f"weak = {r['weak']}, strong = {r['strong']}")
    s = r["router"]
    axis = _axis_of(s)
    if axis != "calls":
        click.echo(
            f"headline axis: {axis} share ({len(r['models'])} models: a share of calls would count a"
            " call to a cheap model like one to the strong model; calls axis after '|')"
        )
    click.echo("router:")
    _figures("learned", s)
    if "apgr_bootstrap" in s:
        _interval(s["apgr_bootstrap"])
    click.echo(f"  cost at 95 % of strong quality: {_pct(s['cost_at_95_share'])} of always-strong cost")
    for a in (axis, _other(axis)):
        _curve(s["curve_" + a], a)
    _baselines(r["baselines"])


def _interval(b: dict[str, Any]) -> None:
    axis = b.get("axis", "calls")
    named = "" if axis == "calls" else f" ({axis} axis)"
    click.echo(
        f"  APGR{named} 95 % interval over resampled test prompts: {b['low']:.3f}–{b['high']:.3f}"
        f" (bootstrap sd {b['std']:.3f}, {b['resamples']} resamples)"
    )


def print_cascade(r: dict[str, Any]) -> None:
    click.echo(
        f"{r['data']}: cascade {' → '.join(r['tiers'])}; train {r['rows']['train']}, test {r['rows']['test']}"
    )
    g = r["learned_gate"]
    click.echo("learned gate:")
    _figures("learned gate", g)
    click.echo(f"  cost at 95 % of strong quality: {_pct(g['cost_at_95_share'])} of always-strong cost")
    _curve(g["curve_cost"], "cost")
    for key in ("seed_gate", "heuristic_format_gate"):
        p = r[key]
        click.echo(
            f"  {key:28} quality {_pct(p['quality_share_of_strong'])} of strong at "
            f"{_pct(p['cost_share_of_strong'])} of its cost; escalated {_pct(p['escalated'])}"
        )
    _baselines(r["baselines"])


def print_calibration(r: dict[str, Any]) -> None:
    click.echo(f"{r['data']} ({r['kind']}): target {r['target']} at {_pct(r['confidence'])} confidence")
    if not r.get("calibration"):
        click.echo("  no setting meets the target on the calibration split (folds 0–3)")
        return
    knob = "lambda" if "lambda" in r else "threshold"
    bound = "lower" if r["target"].startswith("quality") else "upper"
    limit = _pct(r["calibration"]["bound"])
    click.echo(f"  chosen {knob} = {r[knob]:.6g} (calibration {bound} bound {limit})")
    for split in ("calibration", "held_out"):
        p = r[split]
        click.echo(
            f"  {split:12} quality {_pct(p['quality_share_of_strong'])} of strong, cost "
            f"{_pct(p['cost_share_of_strong'])} of strong, "
            f"{_pct(p['strong_share'])} of calls to the strong tier"
        )
    click.echo(f"  target met on held-out fold 4: {r['met_on_held_out']}")
