"""The OpenAI Files + Batch API of an OpenAI-compatible provider (upload, create, poll, download)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from thrifty.errors import UpstreamError
from thrifty.providers.base import error_from_status, loads_json
from thrifty.providers.batch import BatchResult, BatchStatus, NoBatchApi
from thrifty.providers.http import client_timeout, read_body
from thrifty.types import Body

if TYPE_CHECKING:
    from thrifty.providers.openai_compat import OpenAICompatProvider

NO_BATCH_API = (404, 405, 501)
"""Statuses meaning the provider has no batch API (vLLM, Ollama, …)."""
ENDPOINT = "/v1/chat/completions"
FIND_PAGES = 100  # a bound on the search for a lost submission: the newest 10,000 batches
CLOCK_SKEW_S = 3600  # batches created this long before the job (by the provider's clock) still count
_STATUS = {"validating": "in_progress", "finalizing": "in_progress", "cancelling": "cancelling"}


def _before(batch: Body, cutoff: float) -> bool:
    """Created before `cutoff` (a batch without `created_at` is not known to be)."""
    created = batch.get("created_at")
    return isinstance(created, int | float) and created < cutoff


class OpenAIBatchClient:
    """Calls {base_url}/files and {base_url}/batches with the provider's credentials."""

    def __init__(self, provider: OpenAICompatProvider) -> None:
        self.provider = provider

    def _headers(self) -> dict[str, str]:
        headers = dict(self.provider.config.headers)
        if self.provider.config.api_key:
            headers["authorization"] = f"Bearer {self.provider.config.api_key}"
        return headers

    async def _call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> bytes:
        upstream = self.provider.upstream
        try:
            response = await upstream.session().request(
                method,
                self.provider._url(path),
                headers={**self._headers(), **(headers or {})},
                timeout=client_timeout(self.provider.config.timeouts),
                **kwargs,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{self.provider.name} batch API unreachable: {type(exc).__name__}") from exc
        raw = await read_body(response)
        if response.status in NO_BATCH_API:
            raise NoBatchApi(f"{self.provider.name} has no batch API (HTTP {response.status})")
        if response.status >= 400:
            raise error_from_status(
                response.status, raw, response.headers.get("retry-after"), self.provider.name
            )
        return raw

    async def submit(self, requests: list[tuple[str, Body]], model: str, tag: str) -> str:
        lines = (
            orjson.dumps(
                {"custom_id": cid, "method": "POST", "url": ENDPOINT, "body": {**body, "model": model}}
            )
            for cid, body in requests
        )
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field(
            "file", b"\n".join(lines) + b"\n", filename=f"{tag}.jsonl", content_type="application/jsonl"
        )
        uploaded = loads_json(await self._call("POST", "/files", data=form), "file")
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {"thrifty_batch": tag},
        }
        headers = {"content-type": "application/json"}
        created = loads_json(
            await self._call("POST", "/batches", data=orjson.dumps(body), headers=headers), "batch"
        )
        return str(created["id"])

    async def find(self, tag: str, since: float) -> str | None:
        """Pages back through /batches (newest first) for the `thrifty_batch` tag that `submit` puts
        in each batch's metadata, until the batches are older than `since` (less `CLOCK_SKEW_S`):
        a batch created before its job cannot be the job's. At most `FIND_PAGES` pages."""
        cutoff = since - CLOCK_SKEW_S
        after: str | None = None
        for _ in range(FIND_PAGES):
            query = "?limit=100" + (f"&after={after}" if after else "")
            page = loads_json(await self._call("GET", "/batches" + query), "batch list")
            batches = page.get("data") or []
            for batch in batches:
                if (batch.get("metadata") or {}).get("thrifty_batch") == tag and not _before(batch, cutoff):
                    return str(batch["id"])
            after = page.get("last_id")
            if not page.get("has_more") or not after or (batches and _before(batches[-1], cutoff)):
                return None  # the end of the list, or every later page is older still
        return None

    async def _remote(self, batch_id: str) -> Body:
        return loads_json(await self._call("GET", f"/batches/{batch_id}"), "batch")

    async def poll(self, batch_id: str) -> BatchStatus:
        remote = await self._remote(batch_id)
        counts = remote.get("request_counts") or {}
        status = str(remote.get("status"))
        return BatchStatus(
            status=_STATUS.get(status, status),
            total=int(counts.get("total") or 0),
            completed=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0),
            errors=list((remote.get("errors") or {}).get("data") or []),
        )

    async def results(self, batch_id: str) -> list[BatchResult]:
        remote = await self._remote(batch_id)
        raw = b""
        for key in ("output_file_id", "error_file_id"):
            if remote.get(key):
                raw += await self._call("GET", f"/files/{remote[key]}/content") + b"\n"
        out = []
        for item in (orjson.loads(x) for x in raw.splitlines() if x.strip()):
            response = item.get("response") or {}
            if response:
                out.append(
                    BatchResult(
                        item.get("custom_id"),
                        int(response.get("status_code") or 500),
                        response.get("body") or {},
                    )
                )
            else:
                error = item.get("error") or {"message": "no response"}
                out.append(BatchResult(item.get("custom_id"), 500, {"error": error}))
        return out

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", f"/batches/{batch_id}/cancel")
