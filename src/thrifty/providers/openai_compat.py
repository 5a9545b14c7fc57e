"""OpenAI-compatible providers: OpenAI, DeepSeek, Qwen/DashScope, Together, Groq, OpenRouter, vLLM, Ollama…"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from thrifty.errors import UpstreamError
from thrifty.providers.base import Provider, Reply, error_from_status, loads_json
from thrifty.providers.http import read_body, sse_events
from thrifty.types import Body, Usage

if TYPE_CHECKING:
    from thrifty.providers.openai_batch import OpenAIBatchClient

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAICompatProvider(Provider):
    """Requests go out in the OpenAI shape with the model name swapped; answers come back as they are."""

    def _url(self, path: str) -> str:
        return (self.config.base_url or DEFAULT_BASE_URL).rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.config.headers}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return headers

    async def _post(self, path: str, body: Body) -> bytes:
        response = await self.upstream.post(
            self._url(path), orjson.dumps(body), self._headers(), self.config.timeouts
        )
        raw = await read_body(response)
        if response.status >= 400:
            raise error_from_status(response.status, raw, response.headers.get("retry-after"), self.name)
        return raw

    async def chat(self, body: Body, model: str) -> Reply:
        out = {**body, "model": model, "stream": False}
        out.pop("stream_options", None)
        data = loads_json(await self._post("/chat/completions", out), "chat completion")
        if not isinstance(data.get("choices"), list):
            raise UpstreamError(f"{self.name} sent a chat completion without choices")
        return Reply(body=data, usage=Usage.from_openai(data.get("usage")))

    async def stream(self, body: Body, model: str) -> AsyncIterator[Body]:
        out = {**body, "model": model, "stream": True}
        out["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        response = await self.upstream.post(
            self._url("/chat/completions"), orjson.dumps(out), self._headers(), self.config.timeouts
        )
        if response.status >= 400:
            raw = await read_body(response)
            raise error_from_status(response.status, raw, response.headers.get("retry-after"), self.name)
        finished = False
        async for _event, data in sse_events(response):
            if data.strip() == "[DONE]":
                finished = True
                break
            chunk = loads_json(data.encode(), "stream chunk")
            if "error" in chunk and "choices" not in chunk:
                raise UpstreamError(f"{self.name} stream error: {chunk['error']}")
            yield chunk
        if not finished:
            raise UpstreamError(f"{self.name} stream ended without [DONE]")

    def batch_api(self) -> OpenAIBatchClient:
        """The provider's OpenAI Files + Batch API (used by thrifty.batching.jobs)."""
        from thrifty.providers.openai_batch import OpenAIBatchClient

        return OpenAIBatchClient(self)

    async def embeddings(self, body: Body, model: str) -> Body:
        data = loads_json(await self._post("/embeddings", {**body, "model": model}), "embeddings")
        if not isinstance(data.get("data"), list):
            raise UpstreamError(f"{self.name} sent embeddings without data")
        return data
