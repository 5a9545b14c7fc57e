"""The combined prompt of a live micro-batch, and splitting its answer back per item.

Items are numbered from 1 and framed as `<request id="i">…</request>`; the model is asked for a JSON
array of `{"id": i, "answer": "…"}` objects. `split` accepts an item only when its id appears exactly
once with a string answer; an answer with extra, duplicate or unknown ids, or that is not a JSON
array, splits nothing — the caller re-sends the unsplit items on their own.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

HEADER = "You will receive {n} separate requests"
INSTRUCTIONS = (
    HEADER + ', each between <request id="i"> and </request>. Answer each one on its own, exactly as '
    "you would if it were the only request, following the instructions you were given. Reply with only "
    'a JSON array of {n} objects in request order, one per request: [{{"id": 1, "answer": "..."}}, ...]. '
    "Each answer is a JSON string. Write nothing before or after the array."
)
REQUEST = re.compile(r'<request id="(\d+)">\n(.*?)\n</request>', re.DOTALL)
_HEAD = re.compile(r"You will receive (\d+) separate requests")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def combined_text(items: list[str]) -> str:
    """The user message that carries every item."""
    framed = "\n".join(f'<request id="{i}">\n{text}\n</request>' for i, text in enumerate(items, 1))
    return INSTRUCTIONS.format(n=len(items)) + "\n\n" + framed


def parse_items(text: str) -> list[str] | None:
    """The item texts of a combined message, or None when `text` is not one (used by the fake)."""
    head = _HEAD.match(text)
    if head is None:
        return None
    found = REQUEST.findall(text)
    if [int(i) for i, _ in found] != list(range(1, int(head.group(1)) + 1)):
        return None
    return [body for _, body in found]


def split(answer: str | None, n: int) -> dict[int, str]:
    """Item index (0-based) → its answer, for the items the batched answer answers cleanly."""
    data = _load_array(answer or "")
    if data is None:
        return {}
    counts: dict[Any, int] = {}
    for entry in data:
        key = entry.get("id") if isinstance(entry, dict) else None
        counts[key] = counts.get(key, 0) + 1
    valid = {i for i in range(1, n + 1)}
    clean = all(isinstance(k, int) and not isinstance(k, bool) and k in valid for k in counts) and all(
        c == 1 for c in counts.values()
    )
    if not clean or len(data) > n:
        return {}  # extra, duplicate or unknown ids: no answer can be trusted to be its item's
    out: dict[int, str] = {}
    for entry in data:
        if isinstance(entry.get("answer"), str):
            out[entry["id"] - 1] = entry["answer"]
    return out


def _load_array(answer: str) -> list[Any] | None:
    text = _FENCE.sub("", answer.strip())
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, list) else None
