"""Anthropic Message Batches (`/v1/messages/batches`) behind the provider batch seam.

Requests are translated like live ones (`AnthropicProvider._request`, automatic cache breakpoints
included); results come back as OpenAI chat.completion bodies with Anthropic usage mapped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from thrifty.errors import UpstreamError
from thrifty.providers.anthropic_response import to_openai_response
from thrifty.providers.base import error_from_status, loads_json
from thrifty.providers.batch import BatchResult, BatchStatus, NoBatchApi
from thrifty.providers.http import client_timeout, read_body
from thrifty.types import Body

if TYPE_CHECKING:
    from thrifty.providers.anthropic import AnthropicProvider

_RESULT_STATUS = {"errored": 500, "canceled": 499, "expired": 408}


class AnthropicBatchClient:
    def __init__(self, provider: AnthropicProvider) -> None:
        self.provider = provider

    def _url(self, path: str = "") -> str:
        return self.provider._url() + "/batches" + path

    async def _call(self, method: str, url: str, body: Body | None = None) -> bytes:
        upstream = self.provider.upstream
        try:
            response = await upstream.session().request(
                method,
                url,
                data=orjson.dumps(body) if body is not None else None,
                headers=self.provider._headers(),
                timeout=client_timeout(self.provider.config.timeouts),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{self.provider.name} batch API unreachable: {type(exc).__name__}") from exc
        raw = await read_body(response)
        if response.status in (404, 405, 501):
            raise NoBatchApi(f"{self.provider.name} has no message batches API (HTTP {response.status})")
        if response.status >= 400:
            raise error_from_status(
                response.status, raw, response.headers.get("retry-after"), self.provider.name
            )
        return raw

    async def submit(self, requests: list[tuple[str, Body]], model: str, tag: str) -> str:
        items = [{"custom_id": cid, "params": self.provider._request(body, model)} for cid, body in requests]
        created = loads_json(await self._call("POST", self._url(), {"requests": items}), "message batch")
        return str(created["id"])

    async def find(self, tag: str, since: float) -> str | None:
        """Message batches carry no metadata to find a lost submission by."""
        return None

    async def _remote(self, batch_id: str) -> Body:
        return loads_json(await self._call("GET", self._url(f"/{batch_id}")), "message batch")

    async def poll(self, batch_id: str) -> BatchStatus:
        remote = await self._remote(batch_id)
        counts: dict[str, Any] = remote.get("request_counts") or {}
        done = int(counts.get("succeeded") or 0)
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        total = done + failed + int(counts.get("processing") or 0)
        state = remote.get("processing_status")
        if state == "ended":
            status = "cancelled" if done == 0 and int(counts.get("canceled") or 0) else "completed"
        else:
            status = "cancelling" if state == "canceling" else "in_progress"
        return BatchStatus(status=status, total=total, completed=done, failed=failed)

    async def results(self, batch_id: str) -> list[BatchResult]:
        remote = await self._remote(batch_id)
        url = remote.get("results_url")
        if not url:
            return []
        out = []
        created = int(time.time())
        for item in (orjson.loads(x) for x in (await self._call("GET", url)).splitlines() if x.strip()):
            result = item.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                out.append(_succeeded(item.get("custom_id"), result.get("message") or {}, created))
            else:
                error = (result.get("error") or {}).get("error") or {
                    "type": kind,
                    "message": f"request {kind}",
                }
                out.append(
                    BatchResult(item.get("custom_id"), _RESULT_STATUS.get(str(kind), 500), {"error": error})
                )
        return out

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", self._url(f"/{batch_id}/cancel"))


def _succeeded(custom_id: Any, message: dict, created: int) -> BatchResult:
    """One answered request; an answer that cannot be read fails that line alone (502), not the batch."""
    try:
        return BatchResult(custom_id, 200, to_openai_response(message, created))
    except UpstreamError as exc:
        return BatchResult(custom_id, 502, {"error": {"type": "upstream_error", "message": exc.message}})
