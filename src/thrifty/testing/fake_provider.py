"""A fake LLM provider server speaking the real OpenAI and Anthropic wire formats, with scriptable faults.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``POST /v1/messages`` (Anthropic),
``GET /v1/models``; control: ``POST /_script``, ``POST /_default``, ``POST /_reset``, ``GET /_requests``.
Only ``/v1/*`` requests are logged; ``GET /v1/models`` never consumes a scripted behaviour.

From Python::

    with FakeProvider() as fake:
        fake.script({"status": 429, "retry_after": "0.05"}, {"content": "ok"})
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="x")

From a shell: ``python -m thrifty.testing.fake_provider --host 127.0.0.1 --port 9100 --latency-ms 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from aiohttp import web

from thrifty.testing.fake_app import DEFAULT_MODELS, FakeProviderApp, start_site
from thrifty.testing.fake_batch import FakeBatchApi
from thrifty.testing.fake_scripts import Behaviour, ScriptState

__all__ = ["DEFAULT_MODELS", "FakeProvider", "FakeProviderApp", "main"]


class FakeProvider:
    """A fake provider running in a background thread with its own event loop on 127.0.0.1."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default: Mapping[str, Any] | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        prompt_cache: bool = False,
        batch_api: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self._server = FakeProviderApp(default, models, prompt_cache=prompt_cache, batch_api=batch_api)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> ScriptState:
        return self._server.state

    @property
    def batch_api(self) -> FakeBatchApi | None:
        """The in-memory batch endpoints (tests read their batches and set their knobs)."""
        return self._server.batch_api

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> FakeProvider:
        if self._thread is not None:
            raise RuntimeError("fake provider already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._runner, self.port = loop.run_until_complete(
                    start_site(self._server.app, self.host, self.port)
                )
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"fake-provider-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def script(self, *behaviours: Mapping[str, Any], model: str | None = None) -> None:
        """Queue behaviours (FIFO) for requests whose model is ``model`` (any model when None)."""
        self.state.script(behaviours, model)

    def set_default(self, **behaviour: Any) -> None:
        """Replace the default behaviour used when the script queue has nothing for a request."""
        self.state.set_default(behaviour)

    def reset(self) -> None:
        """Clear the script queue, the default behaviour (back to the constructor's) and the request log."""
        self.state.reset()
        if self._server.prefix_cache is not None:
            self._server.prefix_cache.reset()

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Logged ``/v1/*`` requests, oldest first: {"path", "headers", "body", "ts"}."""
        return self.state.requests(path)


async def _serve_forever(host: str, port: int, default: Behaviour, prompt_cache: bool = False) -> None:
    server = FakeProviderApp(default, prompt_cache=prompt_cache)
    runner, bound = await start_site(server.app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake provider listening on http://{host}:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic provider for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="default latency before each answer")
    parser.add_argument("--prompt-cache", action="store_true", help="model provider prompt caching")
    args = parser.parse_args(argv)
    default: Behaviour = {"latency_ms": args.latency_ms} if args.latency_ms else {}
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(_serve_forever(args.host, args.port, default, args.prompt_cache))


if __name__ == "__main__":
    main()
