"""The provider batch seam: what a provider's offline batch API offers `thrifty.batching.jobs`.

A provider that has one returns a `BatchClient` from `batch_api()`. Requests go in and answers come
back in the OpenAI chat shape whatever the provider's own wire format; `custom_id`s are thrifty's own
(`r0`, `r1`, … in line order), which every provider accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from thrifty.errors import UpstreamError
from thrifty.types import Body

RUNNING = "in_progress"
CANCELLING = "cancelling"
FINAL = ("completed", "failed", "expired", "cancelled")


class NoBatchApi(UpstreamError):
    """The provider does not offer a batch API at this base URL: run the job through the gateway."""


@dataclass(slots=True)
class BatchStatus:
    status: str
    """in_progress | cancelling | completed | failed | expired | cancelled"""
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    custom_id: str
    status_code: int
    body: Body
    """An OpenAI chat.completion (status 200) or an OpenAI error body."""


class BatchClient(Protocol):
    async def submit(self, requests: list[tuple[str, Body]], model: str, tag: str) -> str:
        """Start a batch of (custom_id, OpenAI chat body) for upstream `model`; return its id."""

    async def find(self, tag: str, since: float) -> str | None:
        """The id of a batch this provider already holds for `tag` (submitted by a process that died
        before it stored the id), or None: when the provider cannot tell, None. `since` (Unix time) is
        when the job was created: no older batch can be its."""

    async def poll(self, batch_id: str) -> BatchStatus: ...

    async def results(self, batch_id: str) -> list[BatchResult]: ...

    async def cancel(self, batch_id: str) -> None: ...
