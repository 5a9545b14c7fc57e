"""`thrifty compress …` commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("compress")
def compress_group() -> None:
    """Prompt compression commands."""


@compress_group.command("eval")
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL in a shape of ../shared/data/compression/ (passages or one long context).",
)
@click.option(
    "--ratio",
    type=float,
    default=None,
    help="Share of context tokens to keep, 0 < R ≤ 1 (0.5 = 2× fewer). Default 0.5.",
)
@click.option("--budget", "budget_tokens", type=int, default=None, help="Context token budget per question.")
@click.option("--embeddings", is_flag=True, help="Add local MiniLM relevance (slow on cold contexts).")
@click.option("--limit", type=int, default=None, help="Only the first N questions.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def compress_eval(
    data: Path, ratio: float | None, budget_tokens: int | None, embeddings: bool, limit: int | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Context tokens before/after extraction vs. gold answers and supporting sentences kept."""
    import orjson

    from thrifty.compress.base import Budget
    from thrifty.evaluate.compress import evaluate

    if ratio is not None and not 0 < ratio <= 1:
        raise click.BadParameter("must be in (0, 1]", param_hint="--ratio")
    if budget_tokens is not None and budget_tokens < 1:
        raise click.BadParameter("must be ≥ 1", param_hint="--budget")
    if limit is not None and limit < 1:
        raise click.BadParameter("must be ≥ 1", param_hint="--limit")
    if not data.is_file():
        raise click.BadParameter(f"no such file: {data}", param_hint="--data")
    if ratio is None and budget_tokens is None:
        ratio = 0.5
    try:
        summary = evaluate(data, Budget(ratio, budget_tokens), embeddings=embeddings, limit=limit)
    except (ValueError, KeyError, TypeError) as exc:
        click.echo(f"error: {data}: not a compression data file ({exc})", err=True)
        sys.exit(2)
    if as_json:
        click.echo(orjson.dumps(summary.to_dict()).decode())
        return
    for line in summary.lines():
        click.echo(line)
