"""The OpenAI Files + Batch API of an OpenAI-compatible provider (upload, create, poll, download)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from thrifty.errors import UpstreamError
from thrifty.providers.base import error_from_status, loads_json
from thrifty.providers.http import read_body

if TYPE_CHECKING:
    from thrifty.providers.openai_compat import OpenAICompatProvider

NO_BATCH_API = (404, 405, 501)
"""Statuses meaning the provider has no batch API (vLLM, Ollama, …): run the job locally instead."""


class NoBatchApi(UpstreamError):
    """The provider does not offer the OpenAI batch endpoints."""


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
        http = self.provider.http
        try:
            response = await http.session().request(
                method,
                self.provider._url(path),
                headers={**self._headers(), **(headers or {})},
                timeout=http.timeout(self.provider.config.timeouts),
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

    async def upload(self, data: bytes, filename: str) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", data, filename=filename, content_type="application/jsonl")
        created = loads_json(await self._call("POST", "/files", data=form), "file")
        return str(created["id"])

    async def create(
        self, input_file_id: str, endpoint: str, metadata: dict[str, Any] | None
    ) -> dict[str, Any]:
        body = {"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": "24h"}
        if metadata:
            body["metadata"] = metadata
        headers = {"content-type": "application/json"}
        return loads_json(
            await self._call("POST", "/batches", data=orjson.dumps(body), headers=headers), "batch"
        )

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return loads_json(await self._call("GET", f"/batches/{batch_id}"), "batch")

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        return loads_json(await self._call("POST", f"/batches/{batch_id}/cancel"), "batch")

    async def content(self, file_id: str) -> bytes:
        return await self._call("GET", f"/files/{file_id}/content")
