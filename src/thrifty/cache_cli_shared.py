"""What the `thrifty cache` commands share: their common options, the loaders that turn option
values into pairs, an embedding cache and a verifier (with clear errors), and report formatting."""

from __future__ import annotations

from typing import Any

import click

PAIRS = click.option(
    "--pairs", "pairs_path", required=True, type=click.Path(exists=True, dir_okay=False),
    help="JSON lines of {a, b, duplicate}.",
)  # fmt: skip
EMBED_CACHE = click.option(
    "--embed-cache", envvar="THRIFTY_EMBED_CACHE", type=click.Path(file_okay=False),
    help="Directory that keeps embeddings between runs (outside the repo).",
)  # fmt: skip
CONFIDENCE = click.option(
    "--confidence", type=click.FloatRange(0.5, 1.0, max_open=True), default=None,
    help="One-sided confidence of the precision bound the threshold must clear "
    "(default 0.841: one Wilson standard error; 0.5: the point precision).",
)  # fmt: skip
LIMIT = click.option(
    "--limit", type=click.IntRange(min=1), default=None,
    help="Use a deterministic sample of at most N pairs of the split (CPU-bound embedding).",
)  # fmt: skip


def load_pairs(path: str) -> list[Any]:
    from thrifty.cache.verify.pairs import PairsFormatError, read_pairs

    try:
        pairs = read_pairs(path)
    except PairsFormatError as exc:
        raise click.BadParameter(str(exc), param_hint="--pairs") from exc
    if not pairs:
        raise click.BadParameter(f"{path} holds no pairs", param_hint="--pairs")
    return pairs


def embedding_cache(directory: str | None) -> Any:
    from thrifty.embed import get_embedder
    from thrifty.embed.diskcache import EmbeddingCache

    return EmbeddingCache(get_embedder(), directory)


def load_model(path: str | None) -> Any:
    from thrifty.cache.verify import DEFAULT_PATH
    from thrifty.cache.verify.model import VerifierModel

    try:
        return VerifierModel.load(path or DEFAULT_PATH)
    except (OSError, ValueError, KeyError) as exc:
        raise click.BadParameter(f"cannot load verifier: {exc}", param_hint="--verifier") from exc


def echo_band(model: Any) -> None:
    recalls = model.meta.get("cross_band_recall", {})
    if len(recalls) > 1:
        each = ", ".join(f"{band}: {pct(recall)}" for band, recall in recalls.items())
        click.echo(f"dev recall at the target per cross-encoder band: {each}")
    click.echo(
        f"cross-encoder band {model.cross.band}: ran on {model.meta['cross_consulted']} dev pairs "
        "(combiner scores out of fold)"
    )


def band_value(value: str | None) -> float | str | None:
    """`--band`: a head probability in [0, 1) or `auto`."""
    if value is None or value == "auto":
        return value
    try:
        band = float(value)
    except ValueError:
        band = -1.0
    if not 0.0 <= band < 1.0:
        raise click.BadParameter(f"{value!r}: expected auto or a probability in [0, 1)", param_hint="--band")
    return band


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"
