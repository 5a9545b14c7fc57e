"""`thrifty cache embed | train | calibrate | eval`: the semantic-cache verifier on a labelled pairs file.

Pairs files hold `{"a", "b", "duplicate"}` JSON lines; each pair's split (train 60 % / dev 20 % /
test 20 %) comes from a hash of its texts. Train learns on train, calibrate picks the operating point
on dev, eval reports on test (or all). `--embed-cache DIR` keeps embeddings between runs (one
sub-directory per embedder backend); `embed` fills it for a whole file.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from thrifty.cache_cli_shared import (
    CONFIDENCE,
    EMBED_CACHE,
    LIMIT,
    PAIRS,
    DataError,
    band_value,
    echo_band,
    embedding_cache,
    load_model,
    load_pairs,
    pct,
    save_model,
    target_precision_option,
    writable,
)
from thrifty.cli_types import FiniteFloatRange


@click.group("cache")
def cache_group() -> None:
    """Semantic-cache verifier: train, calibrate, evaluate."""


@cache_group.command("train")
@PAIRS
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file to write (.npz).")
@click.option("--train-pairs", type=click.IntRange(min=20), default=None,
              help="Train on a deterministic sample of N train pairs (default: all of them).")  # fmt: skip
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Lexical-stage epochs.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Folds for the out-of-fold lexical logits the later stages learn from.")  # fmt: skip
@click.option("--head-hidden", type=click.IntRange(min=0), default=64, show_default=True,
              help="Hidden units per MLP of the embedding head over |u-v| and u*v (0: text-only model; "
              "training a head needs scikit-learn: pip install 'thrifty[train]').")  # fmt: skip
@click.option("--head-seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="MLPs (one per seed) averaged into the head.")  # fmt: skip
@click.option("--head-alpha", type=FiniteFloatRange(min=0.0), default=None, help="The head's L2 penalty.")
@click.option("--cross-fit", "cross_fit", type=click.IntRange(min=2), default=None,
              help="Also learn from the dev split and write a calibrated model: K models trained on "
              "train + K-1 dev folds score the K-th; the operating point is chosen on those "
              "out-of-fold dev scores; the model written learns from train + all of dev.")  # fmt: skip
@target_precision_option(default=None, help="With --cross-fit: the precision to calibrate for, e.g. 0.95.")
@click.option("--vetoes", default="keep", show_default=True,
              help="With --cross-fit: keep, auto, none or a list (as for calibrate).")  # fmt: skip
@CONFIDENCE
@EMBED_CACHE
def train_command(
    pairs_path: str,
    out: str,
    train_pairs: int | None,
    epochs: int | None,
    folds: int,
    head_hidden: int,
    head_seeds: int,
    head_alpha: float | None,
    cross_fit: int | None,
    target_precision: float | None,
    vetoes: str,
    confidence: float | None,
    embed_cache: str | None,
) -> None:
    """Train the verifier on the train split of PAIRS (uncalibrated: run calibrate next), or with
    --cross-fit K on train + dev, calibrated on out-of-fold dev scores."""
    from dataclasses import replace

    from thrifty.cache.verify.train import TrainSettings, train

    if (cross_fit is None) != (target_precision is None):
        raise click.BadParameter("give --cross-fit and --target-precision together", param_hint="--cross-fit")
    if cross_fit is None and vetoes != "keep":
        raise click.BadParameter("--vetoes needs --cross-fit (or use calibrate)", param_hint="--vetoes")
    if cross_fit is None and confidence is not None:
        hint = "--confidence"
        raise click.BadParameter(f"{hint} needs --cross-fit (or use calibrate)", param_hint=hint)
    chosen_vetoes = _vetoes(vetoes)
    writable(out)

    settings = TrainSettings(
        train_pairs=train_pairs, folds=folds, head_hidden=head_hidden, head_seeds=head_seeds
    )
    if epochs is not None:
        settings = replace(settings, epochs=epochs)
    if head_alpha is not None:
        settings = replace(settings, head_alpha=head_alpha)
    if cross_fit is not None and target_precision is not None:
        chosen = (cross_fit, target_precision, chosen_vetoes, confidence)
        _train_cross_fitted(pairs_path, out, settings, *chosen, embed_cache)
        return
    try:
        model = train(load_pairs(pairs_path), embedding_cache(embed_cache), settings)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    save_model(model, out)
    click.echo(f"wrote {out} (uncalibrated; next: thrifty cache calibrate --pairs ... --verifier {out})")


def _train_cross_fitted(
    pairs_path: str,
    out: str,
    settings: Any,
    folds: int,
    target: float,
    vetoes: str | tuple[str, ...],
    confidence: float | None,
    embed_cache: str | None,
) -> None:
    from thrifty.cache.evaluate import DEFAULT_CONFIDENCE
    from thrifty.cache.verify.crossfit import cross_fit

    level = DEFAULT_CONFIDENCE if confidence is None else confidence
    try:
        model = cross_fit(
            load_pairs(pairs_path), embedding_cache(embed_cache), target, vetoes, folds, settings, level
        )
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    save_model(model, out)
    oof = model.meta["cross_fit"]["oof_dev"]
    click.echo(f"vetoes: {', '.join(model.vetoes) or 'none'}")
    click.echo(
        f"threshold {model.threshold:.4f}: out-of-fold dev precision {pct(oof['precision'])}, "
        f"recall {pct(oof['recall'])} ({oof['correct']} of {oof['accepted']} accepted; "
        f"{oof['pairs']} dev pairs in {folds} folds)"
    )
    if "oof_dev_text" in model.meta["cross_fit"] and model.text_threshold is not None:
        text = model.meta["cross_fit"]["oof_dev_text"]
        click.echo(
            f"text-only fallback threshold {model.text_threshold:.4f}: out-of-fold dev precision "
            f"{pct(text['precision'])}, recall {pct(text['recall'])}"
        )
    click.echo(f"wrote {out} (trained on train + dev, calibrated for {target})")


@cache_group.command("embed")
@PAIRS
@EMBED_CACHE
def embed_command(pairs_path: str, embed_cache: str | None) -> None:
    """Embed every question of PAIRS into the --embed-cache directory (once per embedder)."""
    if not embed_cache:
        raise click.BadParameter("give a directory (or set THRIFTY_EMBED_CACHE)", param_hint="--embed-cache")
    cache = embedding_cache(embed_cache)
    texts = [t for p in load_pairs(pairs_path) for t in (p.a, p.b)]
    todo = len(cache.missing(texts))
    cache.fill(texts, progress=True)
    click.echo(f"{len(set(texts))} questions: {todo} embedded now, the rest were cached ({cache.directory})")


@cache_group.command("calibrate")
@PAIRS
@target_precision_option(required=True, help="Precision the accepted pairs must keep, e.g. 0.95.")
@click.option("--verifier", "verifier_path", type=click.Path(dir_okay=False), default=None,
              help="Verifier file (default: the bundled model).")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the calibrated verifier here (default: back into --verifier; "
              "only prints when neither is given).")  # fmt: skip
@click.option("--vetoes", default="keep", show_default=True,
              help="Hard checks that veto a match: keep (the model's), auto (those that help on dev), "
              "none, or a comma list of numbers,negation,question_kind,entities.")  # fmt: skip
@click.option("--band", type=click.UNPROCESSED, callback=lambda c, p, v: band_value(v), default=None,
              help="For a verifier with a cross-encoder stage: the head probability from which the "
              "cross-encoder runs, or auto (the one that keeps the most dev recall); default: the "
              "model's.")  # fmt: skip
@CONFIDENCE
@LIMIT
@EMBED_CACHE
def calibrate_command(
    pairs_path: str,
    target_precision: float,
    verifier_path: str | None,
    out: str | None,
    vetoes: str,
    band: float | str | None,
    confidence: float | None,
    limit: int | None,
    embed_cache: str | None,
) -> None:
    """Choose the verifier's threshold on the dev split for TARGET-PRECISION."""
    from thrifty.cache.evaluate import DEFAULT_CONFIDENCE, calibrate

    target = out or verifier_path
    writable(target, "--out" if out else "--verifier")  # before the work, not after it
    model = load_model(verifier_path)
    if band is not None and model.cross is None:
        raise click.BadParameter("this verifier has no cross-encoder stage", param_hint="--band")
    level = DEFAULT_CONFIDENCE if confidence is None else confidence
    chosen = _vetoes(vetoes)
    try:
        pairs, cache = load_pairs(pairs_path), embedding_cache(embed_cache)
        model = calibrate(model, pairs, cache, target_precision, limit, chosen, level, band)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    dev, dev_cos = model.meta["dev"], model.meta["dev_cosine"]
    if dev["duplicates"] in (0, dev["pairs"]):
        click.echo(
            "warning: the dev pairs are all of one label, so every threshold (or none) meets the target; "
            "this point says nothing about precision. Calibrate on a file with both labels.",
            err=True,
        )
    if model.meta.get("dev_out_of_fold"):
        click.echo(
            f"{model.meta['dev_out_of_fold']} of {dev['pairs']} dev pairs scored out of fold "
            "(the model learned from them; scores stored by train --cross-fit)"
        )
    click.echo(f"vetoes: {', '.join(model.vetoes) or 'none'}")
    if model.cross is not None:
        echo_band(model)
    click.echo(
        f"threshold {model.threshold:.4f}: dev precision {pct(dev['precision'])}, "
        f"recall {pct(dev['recall'])} on {dev['pairs']} dev pairs "
        f"(cosine ≥ {model.meta['cosine_threshold']:.4f}: precision {pct(dev_cos['precision'])}, "
        f"recall {pct(dev_cos['recall'])})"
    )
    if "dev_text" in model.meta and model.text_threshold is not None:
        text = model.meta["dev_text"]
        click.echo(
            f"text-only fallback threshold {model.text_threshold:.4f}: dev precision "
            f"{pct(text['precision'])}, recall {pct(text['recall'])}"
        )
    if target:
        save_model(model, target, "--out" if out else "--verifier")
        click.echo(f"wrote {target}")


def _vetoes(value: str) -> str | tuple[str, ...]:
    from thrifty.cache.verify.checks import CHECKS

    if value in ("keep", "auto"):
        return value
    names = tuple(n.strip() for n in value.split(",") if n.strip() and n.strip() != "none")
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise click.BadParameter(
            f"unknown check(s) {', '.join(unknown)}; expected keep, auto, none or {', '.join(CHECKS)}",
            param_hint="--vetoes",
        )
    return names


@cache_group.command("eval")
@PAIRS
@click.option("--verifier", "verifier_path", type=click.Path(dir_okay=False), default=None,
              help="Calibrated verifier file (default: the bundled model).")  # fmt: skip
@click.option(
    "--split", type=click.Choice(["test", "dev", "train", "all"]), default="test", show_default=True
)
@LIMIT
@click.option("--latency-queries", type=click.IntRange(min=0), default=200, show_default=True,
              help="Lookups timed with a live embedding.")  # fmt: skip
@click.option("--top-k", type=click.IntRange(1, 64), default=None,
              help="Lookups show the verifier this many neighbours (default: cache.top_k's).")  # fmt: skip
@click.option("--cross-checks", type=click.IntRange(0, 64), default=None,
              help="Cross-encoder runs per lookup at most (default: cache.cross_checks's).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@EMBED_CACHE
def eval_command(
    pairs_path: str,
    verifier_path: str | None,
    split: str,
    limit: int | None,
    latency_queries: int,
    top_k: int | None,
    cross_checks: int | None,
    as_json: bool,
    embed_cache: str | None,
) -> None:
    """Precision, recall, hit rate and lookup latency of the verifier next to a cosine threshold."""
    from thrifty.cache.evaluate import evaluate
    from thrifty.cache.lookup_eval import Serving

    model = load_model(verifier_path)
    serving = Serving.defaults().but(top_k=top_k, cross_checks=cross_checks)
    try:
        report = evaluate(
            model,
            load_pairs(pairs_path),
            embedding_cache(embed_cache),
            split,
            limit,
            latency_queries,
            serving,
        )
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    if report["pairs_trained_on"]:
        click.echo(
            f"warning: the verifier learned from {report['pairs_trained_on']} of these {report['pairs']} "
            "pairs (cross-fitted on the dev split): its figures on them are in-sample. "
            "Evaluate on --split test.",
            err=True,
        )
    if as_json:
        import orjson

        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    echo = click.echo
    echo(f"{report['pairs']} {report['split']} pairs, target precision {report['target_precision']}")
    echo(f"{'':25} {'threshold':>9} {'precision':>10} {'recall':>8} {'accepted':>9}")
    for name in ("verifier", "verifier_text_only", "cosine"):
        if name not in report:
            continue
        s = report[name]
        echo(
            f"pairs  {name[:18]:18} {s['threshold']:>9.4f} {pct(s['precision']):>10} "
            f"{pct(s['recall']):>8} {s['accepted']:>9}"
        )
    look = report["lookup"]
    echo(
        f"lookup over {look['index_entries']} stored questions (top_k {look['top_k']}, "
        f"cross_checks {look['cross_checks']}):"
    )
    echo(f"{'':22} {'hit rate':>9} {'precision':>10} {'recall':>8} {'hits':>9} {'unlabelled':>10}")
    for name in ("verifier", "cosine"):
        s = look[name]
        echo(
            f"lookup {name:15} {pct(s['hit_rate']):>9} {pct(s['precision']):>10} "
            f"{pct(s['recall']):>8} {s['hits']:>9} {s['unlabelled']:>10}"
        )
    echo("(lookup precision counts hits on unlabelled neighbours as wrong)")
    lat = look["latency_ms"]
    echo(
        f"latency ms over {int(lat['queries'])} live lookups (p50 / p99): total "
        f"{lat['total_p50']:.2f} / {lat['total_p99']:.2f}; embed {lat['embed_p50']:.2f} / "
        f"{lat['embed_p99']:.2f}; search {lat['search_p50']:.3f} / {lat['search_p99']:.3f}; "
        f"verify {lat['verify_p50']:.3f} / {lat['verify_p99']:.3f}"
    )
    sys.stdout.flush()
