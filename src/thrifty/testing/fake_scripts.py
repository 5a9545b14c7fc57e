"""Behaviour scripting and request log for the fake provider.

A *behaviour* is a plain dict describing how the fake answers one request (see ``BEHAVIOUR_FIELDS``).
Scripted behaviours are consumed FIFO by matching requests; the default behaviour applies when the
queue holds nothing for the request's model. Scripted fields are laid over the default ones, so a
default ``latency_ms`` still applies to a scripted error.

Random faults: a behaviour with ``fail_rate`` (0..1) turns that share of requests, at random, into one
of ``FAULTS`` (5xx, 429, a dropped connection, or a stall of ``fail_timeout_ms`` meant to outlast the
client's read timeout); ``fail_seed`` makes the draw repeatable. ``ScriptState.faults`` counts them.

Exact Anthropic stream events: ``anthropic_events`` (a list of event objects, each with a string
``type``) replaces the generated events of a streamed ``/v1/messages`` answer; each is sent as
``event: <type>`` + ``data: <the object>``, in order (``drop``, ``malformed`` and ``chunk_delay_ms``
still apply). For sequences the generator never makes: an ``error`` event after ``message_start``,
usage with a 1-hour cache-write split, a stream that stops without ``message_stop``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any

Behaviour = dict[str, Any]

BEHAVIOUR_FIELDS: frozenset[str] = frozenset(
    {
        "status",
        "error_message",
        "retry_after",
        "latency_ms",
        "drop",
        "malformed",
        "omit_usage",
        "content",
        "finish_reason",
        "tool_calls",
        "cached_tokens",
        "cache_write_tokens",
        "usage",
        "chunk_delay_ms",
        "logprob",
        "fail_rate",
        "fail_timeout_ms",
        "fail_seed",
        "anthropic_events",
    }
)
FAULTS: dict[str, Behaviour] = {
    "http_500": {"status": 500},
    "http_503": {"status": 503},
    "http_429": {"status": 429, "retry_after": "0"},
    "drop_connect": {"drop": "connect"},
    "drop_mid_body": {"drop": "mid_body"},
    "timeout": {},  # latency_ms = fail_timeout_ms
}
DEFAULT_FAIL_TIMEOUT_MS = 3000
DROP_MODES: frozenset[str] = frozenset({"connect", "mid_stream", "mid_body"})
USAGE_KEYS: frozenset[str] = frozenset(
    {"prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"}
)
MAX_LOG = 10_000


class BehaviourError(ValueError):
    """A behaviour dict has an unknown field or a value of the wrong type."""


def _check_number(name: str, value: Any, *, integer: bool = False) -> None:
    ok_types: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or value < 0:
        raise BehaviourError(f"{name} must be a non-negative {'integer' if integer else 'number'}")


def validate_behaviour(behaviour: Mapping[str, Any]) -> Behaviour:
    """Check ``behaviour`` and return a copy of it; raise ``BehaviourError`` when it is invalid."""
    if not isinstance(behaviour, Mapping):
        raise BehaviourError("a behaviour must be a JSON object")
    unknown = set(behaviour) - BEHAVIOUR_FIELDS
    if unknown:
        raise BehaviourError(f"unknown behaviour field(s): {', '.join(sorted(unknown))}")
    out = dict(behaviour)
    rate = out.get("fail_rate")
    bad_type = isinstance(rate, bool) or not isinstance(rate, int | float)
    if rate is not None and (bad_type or not 0 <= rate <= 1):
        raise BehaviourError("fail_rate must be a number between 0 and 1")
    if out.get("fail_seed") is not None:
        _check_number("fail_seed", out["fail_seed"], integer=True)
    for name in ("latency_ms", "chunk_delay_ms", "fail_timeout_ms"):
        if out.get(name) is not None:
            _check_number(name, out[name])
    for name in ("status", "cached_tokens", "cache_write_tokens"):
        if out.get(name) is not None:
            _check_number(name, out[name], integer=True)
    if out.get("status") is not None and not 100 <= out["status"] <= 599:
        raise BehaviourError("status must be an HTTP status code")
    if out.get("error_message") is not None and not isinstance(out["error_message"], str):
        raise BehaviourError("error_message must be a string")
    if out.get("drop") is not None and out["drop"] not in DROP_MODES:
        raise BehaviourError(f"drop must be one of {sorted(DROP_MODES)}")
    if out.get("retry_after") is not None:
        out["retry_after"] = str(out["retry_after"])
    for name in ("content", "finish_reason"):
        if out.get(name) is not None and not isinstance(out[name], str):
            raise BehaviourError(f"{name} must be a string")
    if out.get("tool_calls") is not None and not (
        isinstance(out["tool_calls"], list) and all(isinstance(c, dict) for c in out["tool_calls"])
    ):
        raise BehaviourError("tool_calls must be a list of OpenAI-shaped tool call objects")
    usage = out.get("usage")
    if usage is not None:
        if not isinstance(usage, Mapping) or set(usage) - USAGE_KEYS:
            raise BehaviourError(f"usage must be an object with keys among {sorted(USAGE_KEYS)}")
        for key, value in usage.items():
            _check_number(f"usage.{key}", value, integer=True)
        out["usage"] = dict(usage)
    events = out.get("anthropic_events")
    typed = isinstance(events, list) and all(
        isinstance(e, dict) and isinstance(e.get("type"), str) for e in events
    )
    if events is not None and not typed:
        raise BehaviourError("anthropic_events must be a list of event objects, each with a string type")
    logprob = out.get("logprob")
    if logprob is not None and (isinstance(logprob, bool) or not isinstance(logprob, int | float)):
        raise BehaviourError("logprob must be a number")
    return out


class ScriptState:
    """Thread-safe scripted queue, default behaviour and request log of one fake provider."""

    def __init__(self, initial_default: Mapping[str, Any] | None = None, max_log: int = MAX_LOG) -> None:
        self._lock = threading.Lock()
        self._initial_default: Behaviour = validate_behaviour(initial_default or {})
        self._default: Behaviour = dict(self._initial_default)
        self._queue: list[tuple[str | None, Behaviour]] = []
        self._log: deque[dict[str, Any]] = deque(maxlen=max_log)
        self._rng = random.Random(self._default.get("fail_seed"))
        self.faults: Counter[str] = Counter()
        """Random faults injected so far (by FAULTS name)."""

    def script(self, behaviours: Iterable[Mapping[str, Any]], model: str | None = None) -> int:
        """Append behaviours to the FIFO queue; return the queue length."""
        checked = [validate_behaviour(b) for b in behaviours]
        with self._lock:
            self._queue.extend((model, b) for b in checked)
            return len(self._queue)

    def set_default(self, behaviour: Mapping[str, Any]) -> None:
        """Replace the default behaviour (the one used when no scripted behaviour matches)."""
        checked = validate_behaviour(behaviour)
        with self._lock:
            self._default = checked
            if checked.get("fail_seed") is not None:
                self._rng.seed(checked["fail_seed"])

    def reset(self) -> None:
        """Clear the queue and the request log; restore the default given at construction."""
        with self._lock:
            self._queue.clear()
            self._default = dict(self._initial_default)
            self._log.clear()
            self.faults.clear()

    def next_behaviour(self, model: str | None) -> Behaviour:
        """Pop the first queued behaviour matching ``model`` laid over the default one."""
        with self._lock:
            chosen = dict(self._default)
            for i, (want, behaviour) in enumerate(self._queue):
                if want is None or want == model:
                    del self._queue[i]
                    chosen = {**self._default, **behaviour}
                    break
            return self._maybe_fail(chosen)

    def _maybe_fail(self, behaviour: Behaviour) -> Behaviour:
        """With probability ``fail_rate``, the behaviour of a random fault (lock held)."""
        rate = behaviour.get("fail_rate") or 0
        if not rate or self._rng.random() >= rate:
            return behaviour
        name = self._rng.choice(sorted(FAULTS))
        self.faults[name] += 1
        fault = dict(FAULTS[name])
        if name == "timeout":
            fault["latency_ms"] = behaviour.get("fail_timeout_ms") or DEFAULT_FAIL_TIMEOUT_MS
        return {**behaviour, **fault}

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def record(self, path: str, headers: Mapping[str, str], body: Any) -> None:
        entry = {"path": path, "headers": dict(headers), "body": body, "ts": time.time()}
        with self._lock:
            self._log.append(entry)

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._log)
        return [e for e in entries if path is None or e["path"] == path]
