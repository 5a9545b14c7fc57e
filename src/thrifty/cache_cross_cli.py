"""`thrifty cache train-cross`: fine-tune the verifier's cross-encoder stage and calibrate it.

Trains on the train split only (PyTorch on the CPU: `pip install 'thrifty[cross]'`), so every dev
pair is unseen by it; the band, the combiner and the threshold are then chosen on dev exactly as
`thrifty cache calibrate --band` would (docs/cache-verifier.md).
"""

from __future__ import annotations

import click

from thrifty.cache_cli_shared import (
    CONFIDENCE,
    EMBED_CACHE,
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


@click.command("train-cross")
@PAIRS
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file to write (.npz).")
@click.option("--verifier", "verifier_path", type=click.Path(dir_okay=False), default=None,
              help="The verifier to add the stage to (default: the bundled model).")  # fmt: skip
@target_precision_option(default=0.95, show_default=True, help="Precision to calibrate for.")
@click.option("--band", type=click.UNPROCESSED, callback=lambda c, p, v: band_value(v), default="auto",
              show_default=True, help="Head probability from which the cross-encoder runs, or auto: "
              "the one that keeps the most dev recall at the target.")  # fmt: skip
@click.option("--epochs", type=FiniteFloatRange(min=0.01), default=2.0, show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=16, show_default=True, help="LoRA rank.")
@click.option("--train-pairs", type=click.IntRange(min=1), default=None,
              help="Fine-tune on the first N train pairs only (a quick look).")  # fmt: skip
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch threads (default: all).")
@CONFIDENCE
@EMBED_CACHE
def train_cross_command(
    pairs_path: str,
    out: str,
    verifier_path: str | None,
    target_precision: float,
    band: float | str,
    epochs: float,
    rank: int,
    train_pairs: int | None,
    threads: int | None,
    confidence: float | None,
    embed_cache: str | None,
) -> None:
    """Fine-tune the cross-encoder on PAIRS' train split, add it to a verifier, calibrate on dev."""
    from thrifty.cache.evaluate import DEFAULT_CONFIDENCE, calibrate
    from thrifty.cache.verify.pairs import select
    from thrifty.cache.verify.rerank import CrossStage

    try:
        from thrifty.cache.verify.cross_train import CrossSettings, train_cross
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise click.ClickException(f"{exc}: pip install 'thrifty[cross]'") from exc
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        hint = "training the cross-encoder needs PyTorch: pip install 'thrifty[cross]'"
        raise click.ClickException(hint) from exc

    writable(out)  # before the fine-tuning, not after it
    pairs = load_pairs(pairs_path)
    model = load_model(verifier_path)
    settings = CrossSettings(epochs=epochs, rank=rank, alpha=2.0 * rank, threads=threads, limit=train_pairs)
    level = DEFAULT_CONFIDENCE if confidence is None else confidence
    try:
        adapter = train_cross(select(pairs, "train"), settings)
        stage = CrossStage(adapter, settings.scale)
        model = calibrate(
            model.with_cross(stage),
            pairs,
            embedding_cache(embed_cache),
            target_precision,
            None,
            "keep",
            level,
            band,
        )
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    dev = model.meta["dev"]
    echo_band(model)
    click.echo(
        f"threshold {model.threshold:.4f}: dev precision {pct(dev['precision'])}, "
        f"recall {pct(dev['recall'])} (combiner scores out of fold)"
    )
    save_model(model, out)
    click.echo(f"wrote {out}")
