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
    """APGR and CPTs on the headline axis, then the other axis's APGR and CPT(80 %) after a bar
    (n/a throughout when APGR is None: no quality gap between weak and strong)."""
    axis = _axis_of(s)
    other = _other(axis)
    if s[_key("apgr", axis)] is None:
        none = "APGR n/a  CPT(50%) n/a  CPT(80%) n/a"
        click.echo(f"  {name:28} {none}  | {other} axis: APGR n/a  CPT(80%) n/a")
        return
    click.echo(
        f"  {name:28} APGR {s[_key('apgr', axis)]:.3f}  CPT(50%) {fmt_share(s[_key('cpt50', axis)])}"
        f"  CPT(80%) {fmt_share(s[_key('cpt80', axis)])}"
        f"  | {other} axis: APGR {s[_key('apgr', other)]:.3f}"
        f"  CPT(80%) {fmt_share(s[_key('cpt80', other)])}"
    )


def _headline_note(axis: str, count: int, what: str) -> None:
    if axis != "calls":
        click.echo(
            f"headline axis: {axis} share ({count} {what}: a share of calls would count a call to a cheap"
            " model like one to the strong model; calls axis after '|')"
        )


def _weak_strong(r: dict[str, Any]) -> None:
    if r["weak"] == r["strong"]:
        click.echo(f"weak = strong = {r['weak']} (nothing to route)")
    else:
        click.echo(f"weak = {r['weak']}, strong = {r['strong']}")


def _baselines(b: dict[str, Any]) -> None:
    click.echo("baselines (fold 4):")
    _figures("random router", b["random"])
    shown = set()
    for key in ("cheapest", "best_single", "oracle"):
        p = b[key]
        if p["policy"] in shown:  # the cheapest model is also the best: listed once
            continue
        shown.add(p["policy"])
        pgr = "n/a" if p["pgr"] is None else f"{p['pgr']:.2f}"
        click.echo(
            f"  {p['policy']:28} quality {p['quality']:.3f}  cost {_pct(p['cost_share_of_strong'])} of strong"
            f"  (${p['cost_usd']:.4f})  PGR {pgr}"
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
    _weak_strong(r)
    s = r["router"]
    axis = _axis_of(s)
    _headline_note(axis, len(r["models"]), "models")
    click.echo("router:")
    _figures("learned", s)
    if s.get("apgr_bootstrap"):
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
    if r["weak"] == r["strong"]:
        _weak_strong(r)
    g = r["learned_gate"]
    _headline_note(_axis_of(g), len(r["tiers"]), "tiers")
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
