"""Measurements of an answer for the learned gate: shape, hedging, completeness, arithmetic checks.

The arithmetic check re-computes every `a op b = c` the answer writes down (also inside GSM8K-style
`<<a*b=c>>` annotations) and counts the ones that are wrong: a cheap, model-free sign of a bad answer.
"""

from __future__ import annotations

import ast
import math
import operator
import re

_EQUATION = re.compile(
    r"((?:[\d$][\d,.\s$]*|\()[\d,.\s$()+\-*/×x÷]*[+\-*/×x÷][\d,.\s$()+\-*/×x÷]*)=\s*\$?(-?[\d,]*\.?\d+)"
)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_HEDGE = re.compile(
    r"\b(approximately|assume|assuming|however|unclear|not sure|cannot|can't|impossible|mistake|"
    r"wait|actually|re-?evaluate|let me (re)?check|sorry|i think|probably|might|ambiguous)\b",
    re.IGNORECASE,
)
_FINAL = re.compile(r"####|\bthe answer is\b|\\boxed|\banswer:\s|\btherefore\b|\bso,? the\b", re.IGNORECASE)
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
}

ANSWER_NAMES = (
    "log_chars",
    "length_ratio",
    "log_lines",
    "ends_cleanly",
    "has_final_marker",
    "equations",
    "wrong_equations",
    "wrong_share",
    "hedges",
    "final_is_integer",
    "final_in_prompt",
    "distinct_numbers",
    "questions",
    "empty",
    "unclosed",
    "final_repeats",
    "final_is_last_result",
)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError("unsupported expression")


def _value(text: str) -> float | None:
    cleaned = text.replace("$", "").replace(",", "").replace("×", "*").replace("÷", "/").replace("x", "*")
    cleaned = cleaned.strip()
    if not cleaned or len(cleaned) > 80:
        return None
    try:
        return _evaluate(ast.parse(cleaned, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def check_arithmetic(text: str) -> tuple[int, int]:
    """(equations checked, equations whose result is wrong)."""
    checked, wrong, _ = _arithmetic(text)
    return checked, wrong


def _arithmetic(text: str) -> tuple[int, int, str | None]:
    checked = wrong = 0
    last: str | None = None
    for match in _EQUATION.finditer(text[:8000]):
        left = _value(match.group(1))
        right = _value(match.group(2))
        if left is None or right is None:
            continue
        checked += 1
        last = match.group(2).replace(",", "")
        digits = match.group(2).rsplit(".", 1)
        decimals = len(digits[1]) if len(digits) == 2 else 0
        if abs(left - right) > 0.5 * 10.0 ** (-decimals) + 1e-9:
            wrong += 1
    return checked, wrong, last


def _final_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text[-400:])
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def answer_features(prompt: str, answer: str) -> list[float]:
    """A fixed-length list of measurements of `answer` to `prompt` (see ANSWER_NAMES)."""
    text = answer.strip()
    checked, wrong, last = _arithmetic(text)
    final = _final_number(text)
    stripped = text.rstrip()
    return [
        math.log1p(len(text)) / 8,
        min(len(text) / max(len(prompt), 1), 20) / 10,
        math.log1p(text.count("\n")) / 3,
        1.0 if stripped[-1:] in (".", "!", "?", ")", "*") or stripped[-1:].isdigit() else 0.0,
        1.0 if _FINAL.search(text) else 0.0,
        math.log1p(checked) / 3,
        math.log1p(wrong),
        wrong / checked if checked else 0.0,
        math.log1p(len(_HEDGE.findall(text))),
        1.0 if final is not None and re.fullmatch(r"-?\d+(\.0+)?", final) else 0.0,
        1.0 if final is not None and final in prompt else 0.0,
        math.log1p(len(set(_NUMBER.findall(text)))) / 4,
        min(text.count("?"), 5) / 5,
        1.0 if not text else 0.0,
        1.0 if text.count("<<") > text.count(">>") else 0.0,
        math.log1p(text.count(final)) if final else 0.0,
        1.0 if final is not None and last is not None and _same(final, last) else 0.0,
    ]


def _same(a: str, b: str) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return False
