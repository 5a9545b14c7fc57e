"""The Anthropic Messages API provider: OpenAI-shaped requests in, OpenAI-shaped answers out.

The translation itself lives in `anthropic_request` and `anthropic_response` (pure functions; their
docstrings say what is mapped and what is dropped); this module only does the HTTP calls. Anthropic
has no embeddings API, so `embeddings` keeps the base class refusal.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING

import aiohttp
import orjson

from thrifty.providers.anthropic_request import refuse_unsupported, to_anthropic_request
from thrifty.providers.anthropic_response import StreamTranslator, to_openai_response, usage_from_anthropic
from thrifty.providers.base import Provider, Reply, error_from_status, loads_json
from thrifty.providers.http import read_body, sse_events
from thrifty.types import Body, ReportedUsage

if TYPE_CHECKING:
    from thrifty.providers.anthropic_batch import AnthropicBatchClient

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    """Calls POST {base_url}/v1/messages and translates both ways."""

    cache_breakpoints: Callable[[Body], Body] | None = None
    """Adds prompt-cache breakpoints to a translated request (set from `prompt_cache:` config)."""

    def use_prompt_cache(self, breakpoints: Callable[[Body], Body] | None) -> None:
        self.cache_breakpoints = breakpoints

    def refuse(self, body: Body) -> None:
        refuse_unsupported(body)

    def _request(self, body: Body, model: str, *, stream: bool = False) -> Body:
        payload = to_anthropic_request(
            body, model, stream=stream, default_max_tokens=self.config.default_max_tokens
        )
        return payload if self.cache_breakpoints is None else self.cache_breakpoints(payload)

    def batch_api(self) -> AnthropicBatchClient:
        """Anthropic Message Batches (used by thrifty.batching.jobs)."""
        from thrifty.providers.anthropic_batch import AnthropicBatchClient

        return AnthropicBatchClient(self)

    def _url(self) -> str:
        base = (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def _headers(self) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **self.config.headers,
        }
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    async def _send(self, payload: Body) -> aiohttp.ClientResponse:
        """POST a Messages request; raise the mapped UpstreamError on an HTTP error status."""
        response = await self.upstream.post(
            self._url(), orjson.dumps(payload), self._headers(), self.config.timeouts
        )
        if response.status >= 400:
            raw = await read_body(response)
            raise error_from_status(response.status, raw, response.headers.get("retry-after"), self.name)
        return response

    async def chat(self, body: Body, model: str) -> Reply:
        response = await self._send(self._request(body, model))
        data = loads_json(await read_body(response), "message")
        reply = to_openai_response(data, int(time.time()))
        return Reply(body=reply, usage=usage_from_anthropic(data.get("usage")))

    def stream(self, body: Body, model: str) -> AnthropicStream:
        return AnthropicStream(self, self._request(body, model, stream=True))


class AnthropicStream:
    """The chunks of one streamed answer (the request is sent on the first `__anext__`), and the exact
    usage Anthropic has reported so far (`reported_usage`, which `thrifty.streaming.ChatStream` books:
    the OpenAI-shaped usage chunk cannot carry 1-hour cache writes, and a stream cut by an error has
    no usage chunk at all)."""

    def __init__(self, provider: AnthropicProvider, payload: Body) -> None:
        self._translator = StreamTranslator(int(time.time()))
        self._chunks = self._run(provider, payload)

    def __aiter__(self) -> AnthropicStream:
        return self

    async def __anext__(self) -> Body:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()

    def reported_usage(self) -> ReportedUsage | None:
        return self._translator.reported_usage()

    async def _run(self, provider: AnthropicProvider, payload: Body) -> AsyncGenerator[Body, None]:
        response = await provider._send(payload)
        translator = self._translator
        async with aclosing(sse_events(response)) as events:
            async for event, data in events:
                for chunk in translator.feed(event, loads_json(data.encode(), "stream event")):
                    yield chunk
                if translator.finished:
                    break
        translator.finish()
