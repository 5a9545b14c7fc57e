"""Live micro-batching: concurrent small requests sent upstream as one.

Requests that share tenant, served model, system prompt and sampling parameters, arriving within
`window_ms` of the first one, are queued together (up to `max_items` items and `max_batch_tokens`
tokens) and sent as ONE request asking for a JSON array of numbered answers (`batching.prompt`). The
answer is split back; each client gets its own chat.completion with its share of the usage, booked
with the batching saving (`Bookkeeper.batched`). Items the answer does not cover cleanly are booked
as rejected (their share of the wasted call) and re-sent on their own through the rest of the
pipeline, so a client never gets another client's answer or half an answer. A queue waits at most
one window.

Only what one call can express for every item is batched (`unbatchable`): streaming, tools,
structured outputs, logprobs and `n > 1` never are, nor anything the provider applies to the whole
generation where the client meant its own answer — an output cap the client set (the provider would
cut the item where *its* tokenizer counts the cap, with finish_reason "length", and bill only that;
the gateway can neither cut at the same token nor un-bill the rest), stop sequences, a seed,
presence/frequency penalties and logit biases. Those requests go on alone, unchanged.

A cap the gateway itself added (the limits stage's `default_max_tokens` for a budgeted key whose
client set none) is kept per item: items batch only with items of the same cap, the batched call may
spend their caps summed, and an item whose answer comes near its cap is re-sent alone rather than
handed an answer the cap might have cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from thrifty.batching.prompt import combined_text, split
from thrifty.batching.settings import LiveBatching
from thrifty.batching.shares import share_usage
from thrifty.dispatch import answer_text
from thrifty.errors import UpstreamError
from thrifty.pipeline import Call, Handler
from thrifty.pricing.tokens import message_text
from thrifty.types import Body, ChatResult, Usage

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.batching")
HEADER = "x-thrifty-batch-size"
_NOT_BATCHABLE = ("tools", "functions", "tool_choice", "response_format", "logprobs", "top_logprobs", "audio")
_NOT_BATCHABLE += ("prediction", "web_search_options", "stop", "logit_bias", "presence_penalty")
_NOT_BATCHABLE += ("frequency_penalty",)
"""Set to anything but a no-op value (null, 0, empty), these make a request go alone."""
_CAPS = ("max_tokens", "max_completion_tokens")
_PER_ITEM = ("messages", *_CAPS, "user", "metadata", "stream", "thrifty", "stream_options", "store")
_ANSWER_OVERHEAD = 16
"""Output tokens allowed per item for the JSON framing when items carry a gateway cap."""
_CAP_MARGIN = 2
"""An item's answer is accepted under a gateway cap only up to 1/_CAP_MARGIN of it, counted locally
(cl100k): the provider's tokenizer may count the same text as more tokens."""


def unbatchable(body: Body, original: Body) -> str | None:
    """The parameter that keeps a request out of a micro-batch, or None when one call can answer it
    as faithfully as a call of its own. `original` is the client's request (a cap in `body` only is
    the gateway's, see the module doc)."""
    for name in _CAPS:
        if original.get(name) is not None:
            return name
    for name in _NOT_BATCHABLE:
        if body.get(name):
            return name
    if body.get("seed") is not None:
        return "seed"
    if int(body.get("n") or 1) != 1:
        return "n"
    return None


def finished(reply: Body) -> bool:
    """Whether a batched reply ended on its own (not cut by a cap, a filter or a stop sequence)."""
    choices = reply.get("choices") or [{}]
    return choices[0].get("finish_reason") in (None, "stop")


def _cap(body: Body) -> int | None:
    for name in _CAPS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


@dataclass(slots=True)
class _Item:
    call: Call
    next: Handler
    text: str
    tokens: int
    future: asyncio.Future[ChatResult]


@dataclass(slots=True)
class _Batch:
    key: tuple[str, str, bytes]
    items: list[_Item] = field(default_factory=list)
    tokens: int = 0
    timer: asyncio.TimerHandle | None = None


class Coalescer:
    """The batcher stage (innermost: after routing, so requests batch on the model they go to)."""

    def __init__(self, settings: LiveBatching, gateway: Gateway) -> None:
        self.settings = settings
        self.pool = gateway.pool
        self.books = gateway.books
        self.tokens = gateway.tokens
        self.dispatch = gateway.dispatch
        self._open: dict[tuple[str, str, bytes], _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ intake

    async def handle(self, call: Call, next: Handler) -> ChatResult:
        text = self._item_text(call)
        if text is None:
            return await next(call)
        tokens = self.tokens.count_text(text)
        if tokens > self.settings.max_item_tokens:
            return await next(call)
        future: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._add(_Item(call, next, text, tokens, future))
        return await future

    def _item_text(self, call: Call) -> str | None:
        """The user text of a batchable request, or None."""
        body = call.body
        if call.stream or call.meta.get("_thrifty_hold_booking"):
            return None
        if not self.settings.applies_to(call.requested_model, call.model):
            return None
        if unbatchable(body, call.original) is not None:
            return None
        messages = body["messages"]
        head, last = messages[:-1], messages[-1]
        if last.get("role") != "user" or any(m.get("role") not in ("system", "developer") for m in head):
            return None
        if not isinstance(last.get("content"), str | list) or last.get("name"):
            return None
        if isinstance(last["content"], list) and any(p.get("type") != "text" for p in last["content"]):
            return None
        text = message_text(last)
        return text if text.strip() else None

    def _key(self, call: Call) -> tuple[str, str, bytes]:
        body = call.body
        shared = {k: v for k, v in body.items() if k not in _PER_ITEM}
        system = body["messages"][:-1]
        key = [system, shared, _cap(body)]  # items of one batch share their (gateway) cap
        return call.tenant.id, call.model, orjson.dumps(key, option=orjson.OPT_SORT_KEYS)

    def _add(self, item: _Item) -> None:
        key = self._key(item.call)
        batch = self._open.get(key)
        limits = self.settings
        if batch is not None and batch.tokens + item.tokens > limits.max_batch_tokens:
            self._flush(batch)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(key)
            loop = asyncio.get_running_loop()
            batch.timer = loop.call_later(limits.window_ms / 1000, self._flush, batch)
        batch.items.append(item)
        batch.tokens += item.tokens
        if len(batch.items) >= limits.max_items:
            self._flush(batch)

    def _flush(self, batch: _Batch) -> None:
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ sending

    async def _run(self, batch: _Batch) -> None:
        items = [i for i in batch.items if not i.future.done()]  # a client that left is not sent
        try:
            if len(items) == 1:
                await self._alone(items[0])
            elif items:
                await self._together(items)
        except Exception as exc:  # never leave a client hanging
            log.exception("micro-batch failed")
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)

    async def _alone(self, item: _Item, wasted_usd: float | None = None) -> None:
        """Send one item on its own. `wasted_usd`: its share of a batched call whose answer for it
        was not used (booked `rejected`), added to what the request cost, the batched call to its
        attempts."""
        try:
            result = await item.next(item.call)
        except Exception as exc:
            if not item.future.done():
                item.future.set_exception(exc)
            return
        if wasted_usd is not None:
            result.cost_usd += wasted_usd
            result.attempts += 1
        if not item.future.done():
            item.future.set_result(result)

    async def _together(self, items: list[_Item]) -> None:
        first = items[0].call
        combined = self._combined_body(items)
        batch_call = Call(
            body=combined, original=combined, tenant=first.tenant, request_id=_batch_id(), stream=False
        )
        started = time.perf_counter()
        try:
            reply, served = await self.pool.chat(first.model, combined, self.dispatch.on_failure(batch_call))
        except UpstreamError:
            await asyncio.gather(*(self._alone(i) for i in items))  # failures are booked on the batch
            return
        latency = (time.perf_counter() - started) * 1000
        content = _content(reply.body)
        usage = reply.usage or self.books.estimate(combined, answer_text(reply.body))
        parsed = split(content, len(items)) if finished(reply.body) else {}
        shares = self._shares(items, combined, usage, parsed, content)  # output by what was written
        over = {i for i, a in parsed.items() if self._over_cap(items[i], a)}
        answers = {i: a for i, a in parsed.items() if i not in over}
        resend: list[tuple[_Item, float]] = []
        for i, item in enumerate(items):
            share = shares[i]
            if i not in answers:
                why = "its answer may exceed its max_tokens" if i in over else "it could not be split"
                wasted = self.books.rejected(
                    item.call, served.model, served.deployment, share, latency_ms=latency,
                    reason=f"micro-batch answer not used for this item ({why}); re-sent alone",
                )  # fmt: skip
                resend.append((item, wasted))
                continue
            alone = self._alone_usage(item, answers[i], usage, combined, content)
            item.call.meta["batch"] = {"id": batch_call.request_id, "size": len(items), "index": i}
            cost = self.books.batched(
                item.call, served.model, served.deployment, share, alone, latency_ms=item.call.elapsed_ms()
            )
            if not item.future.done():
                item.future.set_result(self._result(item, answers[i], share, cost, served, len(items)))
        if resend:
            await asyncio.gather(*(self._alone(item, wasted) for item, wasted in resend))

    def _combined_body(self, items: list[_Item]) -> Body:
        body = items[0].call.body
        out = {k: v for k, v in body.items() if k not in _PER_ITEM}
        out["messages"] = [
            *body["messages"][:-1],
            {"role": "user", "content": combined_text([i.text for i in items])},
        ]
        cap = _cap(body)  # the gateway's cap, the same for every item (it is part of the batch key)
        if cap is not None:
            out["max_tokens"] = (cap + _ANSWER_OVERHEAD) * len(items)
        return out

    def _over_cap(self, item: _Item, answer: str) -> bool:
        """Whether the item's answer could have been cut by its gateway cap had it gone alone."""
        cap = _cap(item.call.body)
        return cap is not None and self.tokens.count_text(answer) * _CAP_MARGIN > cap

    def _shares(
        self, items: list[_Item], combined: Body, usage: Usage, answers: dict[int, str], content: str
    ) -> list[Usage]:
        """Input split as an equal part of the shared prompt plus the item's own text; output by
        the length of the item's answer (an unsplit item is weighted by the mean)."""
        shared = max(self.tokens.count_messages(combined["messages"]) - sum(i.tokens for i in items), 0)
        input_weights = [shared / len(items) + i.tokens for i in items]
        lengths = {i: self.tokens.count_text(a) + 1 for i, a in answers.items()}
        mean = sum(lengths.values()) / len(lengths) if lengths else 1.0
        output_weights = [lengths.get(i, mean) for i in range(len(items))]
        return share_usage(usage, input_weights, output_weights)

    def _alone_usage(self, item: _Item, answer: str, usage: Usage, combined: Body, content: str) -> Usage:
        """What the item would have used on its own, on the provider's token scale."""
        local_in = self.tokens.count_messages(combined["messages"])
        local_out = self.tokens.count_text(content)
        in_scale = usage.input_tokens / local_in if local_in and not usage.estimated else 1.0
        out_scale = usage.output_tokens / local_out if local_out and not usage.estimated else 1.0
        alone_in = self.tokens.count_messages(item.call.body["messages"])
        return Usage(
            input_tokens=round(alone_in * in_scale),
            output_tokens=round(self.tokens.count_text(answer) * out_scale),
            estimated=usage.estimated,
        )

    def _result(
        self, item: _Item, answer: str, share: Usage, cost: float, served: Any, size: int
    ) -> ChatResult:
        body = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": share.to_openai(),
        }
        return ChatResult(
            body=body,
            request_id=item.call.request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            cost_usd=cost,
            usage=share,
            attempts=served.attempts,
            headers={HEADER: str(size)},
            deployment=served.deployment,
        )

    async def aclose(self) -> None:
        for batch in list(self._open.values()):
            self._flush(batch)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _batch_id() -> str:
    return "batch_" + uuid.uuid4().hex[:24]


def _content(body: Body) -> str:
    choices = body.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


def build_stage(gateway: Gateway) -> Coalescer | None:
    settings: LiveBatching = gateway.config.batching.live
    return Coalescer(settings, gateway) if settings.enabled else None
