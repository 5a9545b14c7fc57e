"""The Stage seam: each pipeline stage wraps the rest of the pipeline, like middleware.

A stage gets the `Call` and `next` (the rest of the pipeline). It may answer itself (a cache hit),
change the call before passing it on (compression, routing), call `next` more than once (a cascade
escalating), or look at the result on the way back (storing it in the cache). The innermost handler
calls the provider pool and books the answer in the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from thrifty.types import Body, ChatResult, Tenant


class AttemptCounter:
    """Numbers the ledger rows of one request, and adds up what they cost."""

    def __init__(self) -> None:
        self.value = 0
        self.usd = 0.0
        """The cost of every row booked for the request so far."""

    def next(self, cost_usd: float = 0.0) -> int:
        self.value += 1
        self.usd += cost_usd
        return self.value


@dataclass(slots=True)
class Call:
    """One client request on its way through the pipeline."""

    body: Body
    """What will be sent upstream; stages may replace it (its `model` is the model to call)."""
    original: Body
    """The client's request as validated: the baseline is priced on it."""
    tenant: Tenant
    request_id: str
    stream: bool
    attempts: AttemptCounter = field(default_factory=AttemptCounter)
    started: float = field(default_factory=time.perf_counter)
    route: str | None = None
    """Label of the routing decision (e.g. `auto:code`, `cascade:tier2`), booked in the ledger."""
    original_input_tokens: int | None = None
    """Input tokens of the request before compression; set by a compressing stage."""
    lever: str | None = None
    """Which lever chose the served model ("routing" or "cascade"): its saving is booked there."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Free-form annotations booked with the final ledger row."""
    side_cost_usd: float = 0.0
    """Booked for calls made on this request's behalf that are not attempts at its answer (a prompt
    summary); `with_side_costs` moves it into the result's cost (the limits stage, to settle the key's
    budget, then the Gateway)."""

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def requested_model(self) -> str:
        return self.original["model"]

    def with_model(self, model: str) -> Call:
        """The same call aimed at another model (shares counters and annotations)."""
        self.body = {**self.body, "model": model}
        return self

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


Handler = Callable[[Call], Awaitable[ChatResult]]


class Stage(Protocol):
    """One pipeline stage. Streaming calls must come back with `result.stream` set."""

    async def handle(self, call: Call, next: Handler) -> ChatResult: ...


def compose(stages: list[Stage], terminal: Handler) -> Handler:
    """Chain stages around the terminal handler, first stage outermost."""
    handler = terminal
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, next_handler: Handler) -> Handler:
    async def run(call: Call) -> ChatResult:
        return await stage.handle(call, next_handler)

    return run


def with_side_costs(call: Call, result: ChatResult) -> ChatResult:
    """The result, its cost counting what the call paid beside its answer (a prompt summary). Moves the
    amount from the call to the result, so folding twice (the limits stage settling a key's budget
    with it, then the Gateway) counts it once."""
    if call.side_cost_usd:
        result.cost_usd += call.side_cost_usd
        if result.stream is not None:  # its cost is reported when it ends
            result.stream.prior_cost_usd += call.side_cost_usd
        call.side_cost_usd = 0.0
    return result
