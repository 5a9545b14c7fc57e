"""`thrifty route …`: train, evaluate and calibrate routers and cascade gates on recorded outcomes."""

from __future__ import annotations

import sys
from typing import Any

import click


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _emit(result: dict[str, Any], as_json: bool, printer: Any) -> None:
    for warning in result.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        import orjson

        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    else:
        printer(result)


@click.group("route")
def route() -> None:
    """Routers and cascades: train, eval, calibrate (offline, on recorded outcomes)."""


_TOKENS_HELP = (
    "Router: also embed the first N prompt tokens (default: no embedding; each token costs ~0.11 ms "
    "per decision on int8 ONNX)."
)


@route.command("train")
@click.option("--data", "data_path", required=True, help="Outcome JSONL (see docs/routing.md).")
@click.option("--out", "out_path", required=True, help="Router file to write (.npz).")
@click.option("--all-folds", is_flag=True, help="Train on every row (default: folds 0–3 only).")
@click.option("--no-embedding", is_flag=True, help="N-grams and lexical features only (the default).")
@click.option("--embed-tokens", type=click.IntRange(1, 256), default=None, help=_TOKENS_HELP)
def train_cmd(
    data_path: str, out_path: str, all_folds: bool, no_embedding: bool, embed_tokens: int | None
) -> None:
    """Train a learned router (per-model P(good | prompt))."""
    from thrifty.evaluate.metrics import require_models
    from thrifty.evaluate.route import router_cache
    from thrifty.routing.data import OutcomeDataError, load_outcomes
    from thrifty.routing.train import train

    try:
        data = load_outcomes(data_path)
        require_models(data.models)
        rows = data if all_folds else data.checked_split(need_test=False)[0]
    except (OutcomeDataError, ValueError) as exc:
        _fail(str(exc))
    tokens = None if no_embedding else embed_tokens
    emb = None if tokens is None else router_cache(tokens).matrix(data.prompts)[rows.rows]
    try:
        model, report = train(rows, emb, embed_tokens=tokens, meta={"data": data_path.rsplit("/", 1)[-1]})
    except ValueError as exc:
        _fail(str(exc))
    path = model.save(out_path)
    click.echo(
        f"trained on {len(rows)} rows, models {model.models}; n-gram l2={report.l2:g} "
        f"dense l2={report.dense_l2:g} heads={report.heads} "
        f"cross-validated APGR={report.cv_apgr:.3f} → {path}"
    )


@route.command("train-gate")
@click.option("--data", "data_path", required=True)
@click.option("--out", "out_path", required=True)
@click.option("--no-embedding", is_flag=True, help="Answer + lexical features only (smaller, faster).")
def train_gate_cmd(data_path: str, out_path: str, no_embedding: bool) -> None:
    """Train a learned cascade gate on recorded responses (folds 0–3)."""
    from thrifty.evaluate.cascade import answered_tiers, tier_order, train_gate
    from thrifty.evaluate.metrics import require_models
    from thrifty.evaluate.route import router_cache
    from thrifty.routing.data import OutcomeDataError, load_outcomes

    try:
        data = load_outcomes(data_path)
        require_models(data.models)
        cal = data.checked_split(need_test=False)[0]
        tiers = answered_tiers(cal, tier_order(cal))
        emb = None if no_embedding else router_cache(None).matrix(data.prompts)[cal.rows]
        model, l2 = train_gate(cal, emb, tiers)
    except (OutcomeDataError, ValueError) as exc:
        _fail(str(exc))
    path = model.save(out_path)
    click.echo(f"gate trained on {model.meta['rows']} answers, l2={l2:g} → {path}")


@route.command("eval")
@click.option("--data", "data_path", required=True)
@click.option("--router", "router_path", default=None, help="Evaluate this router file instead of training.")
@click.option("--cascade", is_flag=True, help="Evaluate a gated cascade (needs recorded responses).")
@click.option("--gate", "gate_path", default=None, help="Cascade: evaluate this gate file.")
@click.option("--no-embedding", is_flag=True, help="Train without prompt embeddings (router: the default).")
@click.option("--embed-tokens", type=click.IntRange(1, 256), default=None, help=_TOKENS_HELP)
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(
    data_path: str,
    router_path: str | None,
    cascade: bool,
    gate_path: str | None,
    no_embedding: bool,
    embed_tokens: int | None,
    as_json: bool,
) -> None:
    """Replay fold 4 (after training on folds 0–3): curve, APGR, CPT, cost at 95 %, baselines."""
    from thrifty.evaluate import printing
    from thrifty.routing.data import OutcomeDataError
    from thrifty.routing.learned import RouterFileError

    try:
        if cascade:
            from thrifty.evaluate.cascade import evaluate_cascade

            result = evaluate_cascade(data_path, gate_file=gate_path, embed=not no_embedding)
            _emit(result, as_json, printing.print_cascade)
        else:
            from thrifty.evaluate.route import evaluate_router

            result = evaluate_router(
                data_path, router=router_path, embed_tokens=None if no_embedding else embed_tokens
            )
            _emit(result, as_json, printing.print_router)
    except (OutcomeDataError, RouterFileError, ValueError) as exc:
        _fail(str(exc))


@route.command("calibrate")
@click.option("--data", "data_path", required=True)
@click.option("--target", required=True, help="quality:0.95 (≥ 95 % of strong quality) or strong:0.3.")
@click.option("--cascade", is_flag=True, help="Calibrate the cascade gate threshold instead of router λ.")
@click.option("--no-embedding", is_flag=True, help="Train without prompt embeddings (router: the default).")
@click.option("--embed-tokens", type=click.IntRange(1, 256), default=None, help=_TOKENS_HELP)
@click.option(
    "--confidence",
    type=float,
    default=None,
    help="One-sided confidence the target must hold at on the calibration split "
    "(default 0.9; 0.5: the point estimate).",
)
@click.option("--json", "as_json", is_flag=True)
def calibrate_cmd(
    data_path: str,
    target: str,
    cascade: bool,
    no_embedding: bool,
    embed_tokens: int | None,
    confidence: float | None,
    as_json: bool,
) -> None:
    """Pick λ / the gate threshold on folds 0–3 for a target; report what it achieved on fold 4."""
    from thrifty.evaluate import printing
    from thrifty.evaluate.calibration import calibrate_cascade, calibrate_router
    from thrifty.routing.calibrate import Target
    from thrifty.routing.data import OutcomeDataError

    try:
        goal = Target.parse(target) if confidence is None else Target.parse(target, confidence)
        embed = not no_embedding
        result = (
            calibrate_cascade(data_path, goal, embed=embed)
            if cascade
            else calibrate_router(data_path, goal, embed_tokens=None if no_embedding else embed_tokens)
        )
    except (OutcomeDataError, ValueError) as exc:
        _fail(str(exc))
    _emit(result, as_json, printing.print_calibration)


@route.command("classify")
@click.option("--data", "data_path", required=True)
@click.option("--expect", "expect", multiple=True, help="data task=classifier task, e.g. gsm8k=math.")
def classify_cmd(data_path: str, expect: tuple[str, ...]) -> None:
    """Rules classifier accuracy on a labelled outcome file (labels from its `task` field)."""
    from collections import Counter

    from thrifty.routing.classifier import TASKS, TaskClassifier
    from thrifty.routing.data import OutcomeDataError, load_outcomes
    from thrifty.routing.signals import Signals

    mapping = _expect_mapping(expect, TASKS)
    try:
        data = load_outcomes(data_path)
    except OutcomeDataError as exc:
        _fail(str(exc))
    present = sorted({t for t in data.tasks if t})
    if mapping and not set(mapping) & set(present):
        have = f"the file's tasks: {present}" if present else "no row has a 'task' field"
        _fail(f"no row carries a task named in --expect ({', '.join(mapping)}); {have}")
    if not present:
        _fail(f"no row of {data_path} has a 'task' field: there are no labels to score the classifier on")
    labels = [mapping.get(t, t) for t in data.tasks]
    unscored = [t or "(none)" for t, label in zip(data.tasks, labels, strict=True) if label not in TASKS]
    if unscored:
        unknown, count = sorted(set(unscored)), len(unscored)
        click.echo(
            f"warning: {count} rows have a task that is not a classifier task nor mapped by --expect "
            f"({', '.join(unknown)}): counted as wrong",
            err=True,
        )
    classifier = TaskClassifier()
    guesses = [classifier.classify(Signals.of_prompt(p)).task for p in data.prompts]
    right = sum(g == t for g, t in zip(guesses, labels, strict=True))
    click.echo(f"accuracy {right / len(labels):.3f} on {len(labels)} prompts; predicted: {Counter(guesses)}")


def _expect_mapping(expect: tuple[str, ...], tasks: tuple[str, ...]) -> dict[str, str]:
    """`--expect DATA_TASK=CLASSIFIER_TASK` pairs as a dict; a malformed pair or an unknown classifier
    task is a usage error (exit 2)."""
    mapping = {}
    for pair in expect:
        data_task, sep, task = pair.partition("=")
        if not sep or not data_task or not task:
            _fail(f"--expect {pair!r}: expected DATA_TASK=CLASSIFIER_TASK, e.g. gsm8k=math")
        if task not in tasks:
            _fail(f"--expect {pair!r}: {task!r} is not a classifier task (tasks: {', '.join(tasks)})")
        mapping[data_task] = task
    return mapping
