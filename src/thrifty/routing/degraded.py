"""A cascade's degraded answer: a rejected tier's answer, served when the final tier fails upstream.

When the final tier fails for a reason that is the provider's (5xx, 429, a timeout, a dropped
connection, no healthy deployment: `degradable`) after its retries and fallbacks, a cascade that holds
a complete answer from a rejected tier serves the last such answer rather than the error: the client
asked a question thrifty has already paid to have answered. A failure that is the request's (an
upstream 400: another attempt would be refused too) is returned as it is.

Only an answer fit to stand in is held (`unfit` says why one is not): complete (at least one choice,
every one finished, none cut by the content filter), and every choice passing the format checks —
not empty, not cut off (`finish_reason: length`), valid JSON (and schema) when `response_format` asks
for it — and, for a streaming client, one a replay streams back as it is. So an answer the gates
rejected for its quality (a hedge, a low judge grade or confidence) may be served, one that is empty
or known broken never is.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.errors import UpstreamError
from thrifty.routing.gates import Answer, FormatGate, check_choices
from thrifty.streaming import replayable
from thrifty.types import Body, ChatResult

HEADER = "x-thrifty-cascade"
"""Response header: `degraded` on a rejected tier's answer served because the final tier failed."""


@dataclass(slots=True)
class Held:
    """A rejected tier's answer, kept in case the final tier fails."""

    number: int
    """The tier's number (1 = the first tier)."""
    result: ChatResult
    reason: str
    """Why its gate rejected it (as booked on its `rejected` row)."""


def degradable(error: UpstreamError) -> bool:
    """Whether a final tier's failure may be answered with a held answer: the provider's failure, not
    a refusal of the request itself (an upstream 400, which thrifty returns as a 400)."""
    return error.status != 400


async def unfit(request: Body, response: Body, *, stream: bool) -> str | None:
    """Why a rejected tier's answer may not be served in the final tier's place, or None."""
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices:
        return "no choices"
    for choice in choices:
        if not isinstance(choice, dict) or not choice.get("finish_reason"):
            return "unfinished answer"
        if choice["finish_reason"] == "content_filter":
            return "answer cut by the content filter"
    verdict = await check_choices(FormatGate(), Answer.each(request, response))
    if not verdict.ok:
        return verdict.reason
    if stream and not replayable(response):
        return "answer cannot be replayed to a stream"
    return None
