"""`thrifty cache train | calibrate | eval`: the semantic-cache verifier on a labelled pairs file.

Pairs files hold `{"a", "b", "duplicate"}` JSON lines; each pair's split (train 60 % / dev 20 % /
test 20 %) comes from a hash of its texts. Train learns on train, calibrate picks the operating point
on dev, eval reports on test (or all). `--embed-cache DIR` keeps embeddings between runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

_PAIRS = click.option(
    "--pairs", "pairs_path", required=True, type=click.Path(exists=True, dir_okay=False),
    help="JSON lines of {a, b, duplicate}.",
)  # fmt: skip
_EMBED_CACHE = click.option(
    "--embed-cache", envvar="THRIFTY_EMBED_CACHE", type=click.Path(file_okay=False),
    help="Directory that keeps embeddings between runs (outside the repo).",
)  # fmt: skip
_LIMIT = click.option(
    "--limit", type=click.IntRange(min=1), default=None,
    help="Use a deterministic sample of at most N pairs of the split (CPU-bound embedding).",
)  # fmt: skip


def _pairs(path: str) -> list[Any]:
    from thrifty.cache.verify.pairs import PairsFormatError, read_pairs

    try:
        pairs = read_pairs(path)
    except PairsFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--pairs") from exc
    if not pairs:
        raise click.BadParameter(f"{path} holds no pairs", param_hint="--pairs")
    return pairs


def _cache(directory: str | None) -> Any:
    from thrifty.cache.verify.embcache import EmbeddingCache
    from thrifty.embed import get_embedder

    return EmbeddingCache(get_embedder(), directory)


def _model(path: str | None) -> Any:
    from thrifty.cache.verify import DEFAULT_PATH
    from thrifty.cache.verify.model import VerifierModel

    try:
        return VerifierModel.load(path or DEFAULT_PATH)
    except (OSError, ValueError, KeyError) as exc:
        raise click.BadParameter(f"cannot load verifier: {exc}", param_hint="--verifier") from exc


@click.group("cache")
def cache_group() -> None:
    """Semantic-cache verifier: train, calibrate, evaluate."""


@cache_group.command("train")
@_PAIRS
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file to write (.npz).")
@click.option("--combiner-pairs", type=click.IntRange(min=50), default=3000, show_default=True,
              help="Train pairs held apart (and embedded) to fit the cosine combiner.")  # fmt: skip
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Lexical-stage epochs.")
@click.option("--head-hidden", type=click.IntRange(min=0), default=0, show_default=True,
              help="Hidden units of an embedding head over |u-v| and u*v (0: none; "
              "training it needs scikit-learn).")  # fmt: skip
@_EMBED_CACHE
def train_command(
    pairs_path: str,
    out: str,
    combiner_pairs: int,
    epochs: int | None,
    head_hidden: int,
    embed_cache: str | None,
) -> None:
    """Train the verifier on the train split of PAIRS (uncalibrated: run calibrate next)."""
    from dataclasses import replace

    from thrifty.cache.verify.train import TrainSettings, train

    settings = TrainSettings(combiner_pairs=combiner_pairs, head_hidden=head_hidden)
    if epochs is not None:
        settings = replace(settings, epochs=epochs)
    try:
        model = train(_pairs(pairs_path), _cache(embed_cache), settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    model.save(out)
    click.echo(f"wrote {out} (uncalibrated; next: thrifty cache calibrate --pairs ... --verifier {out})")


@cache_group.command("calibrate")
@_PAIRS
@click.option("--target-precision", type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
              required=True, help="Precision the accepted pairs must keep, e.g. 0.95.")  # fmt: skip
@click.option("--verifier", "verifier_path", type=click.Path(dir_okay=False), default=None,
              help="Verifier file (default: the bundled model).")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the calibrated verifier here (default: back into --verifier; "
              "only prints when neither is given).")  # fmt: skip
@_LIMIT
@_EMBED_CACHE
def calibrate_command(
    pairs_path: str,
    target_precision: float,
    verifier_path: str | None,
    out: str | None,
    limit: int | None,
    embed_cache: str | None,
) -> None:
    """Choose the verifier's threshold on the dev split for TARGET-PRECISION."""
    from thrifty.cache.evaluate import calibrate

    model = _model(verifier_path)
    try:
        model = calibrate(model, _pairs(pairs_path), _cache(embed_cache), target_precision, limit)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    dev, dev_cos = model.meta["dev"], model.meta["dev_cosine"]
    click.echo(
        f"threshold {model.threshold:.4f}: dev precision {_pct(dev['precision'])}, "
        f"recall {_pct(dev['recall'])} on {dev['pairs']} dev pairs "
        f"(cosine ≥ {model.meta['cosine_threshold']:.4f}: precision {_pct(dev_cos['precision'])}, "
        f"recall {_pct(dev_cos['recall'])})"
    )
    if "dev_text" in model.meta and model.text_threshold is not None:
        text = model.meta["dev_text"]
        click.echo(
            f"text-only fallback threshold {model.text_threshold:.4f}: dev precision "
            f"{_pct(text['precision'])}, recall {_pct(text['recall'])}"
        )
    target = out or verifier_path
    if target:
        model.save(target)
        click.echo(f"wrote {target}")


@cache_group.command("eval")
@_PAIRS
@click.option("--verifier", "verifier_path", type=click.Path(dir_okay=False), default=None,
              help="Calibrated verifier file (default: the bundled model).")  # fmt: skip
@click.option(
    "--split", type=click.Choice(["test", "dev", "train", "all"]), default="test", show_default=True
)
@_LIMIT
@click.option("--latency-queries", type=click.IntRange(min=0), default=200, show_default=True,
              help="Lookups timed with a live embedding.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_EMBED_CACHE
def eval_command(
    pairs_path: str,
    verifier_path: str | None,
    split: str,
    limit: int | None,
    latency_queries: int,
    as_json: bool,
    embed_cache: str | None,
) -> None:
    """Precision, recall, hit rate and lookup latency of the verifier next to a cosine threshold."""
    from thrifty.cache.evaluate import evaluate

    model = _model(verifier_path)
    try:
        report = evaluate(model, _pairs(pairs_path), _cache(embed_cache), split, limit, latency_queries)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        import orjson

        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    _print_report(report)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _print_report(report: dict[str, Any]) -> None:
    echo = click.echo
    echo(f"{report['pairs']} {report['split']} pairs, target precision {report['target_precision']}")
    echo(f"{'':25} {'threshold':>9} {'precision':>10} {'recall':>8} {'accepted':>9}")
    for name in ("verifier", "verifier_text_only", "cosine"):
        if name not in report:
            continue
        s = report[name]
        echo(
            f"pairs  {name[:18]:18} {s['threshold']:>9.4f} {_pct(s['precision']):>10} "
            f"{_pct(s['recall']):>8} {s['accepted']:>9}"
        )
    look = report["lookup"]
    echo(f"lookup over {look['index_entries']} stored questions:")
    echo(f"{'':22} {'hit rate':>9} {'precision':>10} {'recall':>8} {'hits':>9} {'unlabelled':>10}")
    for name in ("verifier", "cosine"):
        s = look[name]
        echo(
            f"lookup {name:15} {_pct(s['hit_rate']):>9} {_pct(s['precision']):>10} "
            f"{_pct(s['recall']):>8} {s['hits']:>9} {s['unlabelled']:>10}"
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
