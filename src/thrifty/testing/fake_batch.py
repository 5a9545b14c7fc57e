"""The fake provider's OpenAI Files and Batch API, and its answer to a live micro-batch prompt.

Endpoints: ``POST /v1/files`` (multipart, purpose=batch), ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches``,
``POST /v1/batches/{id}/cancel``. A batch moves one step per retrieve: validating → in_progress →
completed; on completion every line is answered like ``/v1/chat/completions`` would (scripted
behaviours apply per line) and written to an output file.

`batched_answer` makes the fake answer a thrifty micro-batch prompt the way an obedient model does:
a JSON array with, for each framed request, the answer that request would get on its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from thrifty.batching.prompt import parse_items
from thrifty.testing.fake_anthropic import anthropic_error, anthropic_message
from thrifty.testing.fake_wire import (
    ECHO_CHARS,
    ECHO_PREFIX,
    build_answer,
    new_id,
    openai_completion,
    openai_error,
)

if TYPE_CHECKING:
    from thrifty.testing.fake_app import FakeProviderApp


def batched_answer(text: str) -> str | None:
    """The JSON-array answer to a micro-batch prompt, or None when `text` is not one."""
    items = parse_items(text)
    if items is None:
        return None
    answers = [{"id": i, "answer": ECHO_PREFIX + item[:ECHO_CHARS]} for i, item in enumerate(items, 1)]
    return orjson.dumps(answers).decode()


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class FakeBatchApi:
    """Files and batches held in memory by one fake server (OpenAI), plus Anthropic message batches."""

    def __init__(self, server: FakeProviderApp) -> None:
        self.server = server
        self.messages = FakeMessageBatches(server)
        self.anthropic_create = self.messages.anthropic_create
        self.anthropic_retrieve = self.messages.anthropic_retrieve
        self.anthropic_results = self.messages.anthropic_results
        self.anthropic_cancel = self.messages.anthropic_cancel
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.create_delay_s = 0.0  # hold the answer to POST /v1/batches after creating the batch

    def register(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}", self.file)
        app.router.add_get("/v1/files/{id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list)
        app.router.add_get("/v1/batches/{id}", self.retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self.cancel)
        app.router.add_post("/v1/messages/batches", self.anthropic_create)
        app.router.add_get("/v1/messages/batches/{id}", self.anthropic_retrieve)
        app.router.add_get("/v1/messages/batches/{id}/results", self.anthropic_results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self.anthropic_cancel)

    def _log(self, request: web.Request, body: Any = None) -> None:
        self.server.state.record(request.path, {k.lower(): v for k, v in request.headers.items()}, body)

    def _store(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        meta = {
            "id": new_id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        with self._lock:
            self.files[meta["id"]] = (meta, data)
        return meta

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        self._log(request, {"purpose": form.get("purpose")})
        upload = form.get("file")
        if not isinstance(upload, web.FileField) or form.get("purpose") != "batch":
            return _json(openai_error(400, "expected a multipart 'file' with purpose=batch"), 400)
        return _json(self._store(upload.file.read(), upload.filename or "input.jsonl", "batch"))

    async def file(self, request: web.Request) -> web.Response:
        self._log(request)
        found = self.files.get(request.match_info["id"])
        return _json(found[0]) if found else _json(openai_error(404, "no such file"), 404)

    async def content(self, request: web.Request) -> web.Response:
        self._log(request)
        found = self.files.get(request.match_info["id"])
        if not found:
            return _json(openai_error(404, "no such file"), 404)
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        self._log(request, body)
        if body.get("input_file_id") not in self.files:
            return _json(openai_error(400, "unknown input_file_id"), 400)
        now = int(time.time())
        batch = {
            "id": new_id("batch_"),
            "object": "batch",
            "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "completed_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        with self._lock:
            batch["_order"] = len(self.batches)
            self.batches[batch["id"]] = batch
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        return _json(_public(batch))

    async def list(self, request: web.Request) -> web.Response:
        """Newest first, `limit` per page (default 20), `after` = the last id of the previous page."""
        self._log(request)
        data = sorted(self.batches.values(), key=lambda b: b["_order"], reverse=True)
        after = request.query.get("after")
        if after is not None:
            ids = [b["id"] for b in data]
            data = data[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit", "20"))
        page = [_public(b) for b in data[:limit]]
        return _json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(data) > limit,
            }
        )

    async def retrieve(self, request: web.Request) -> web.Response:
        self._log(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _json(openai_error(404, "no such batch"), 404)
        if batch["status"] == "validating":
            lines = self._lines(batch)
            batch.update(status="in_progress", in_progress_at=int(time.time()))
            batch["request_counts"]["total"] = len(lines)
        elif batch["status"] == "in_progress":
            self._complete(batch)
        return _json(_public(batch))

    async def cancel(self, request: web.Request) -> web.Response:
        self._log(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _json(openai_error(404, "no such batch"), 404)
        if batch["status"] in ("validating", "in_progress"):
            batch.update(status="cancelled", cancelled_at=int(time.time()))
        return _json(_public(batch))

    def _lines(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        raw = self.files[batch["input_file_id"]][1]
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]

    def _complete(self, batch: dict[str, Any]) -> None:
        out = []
        for line in self._lines(batch):
            body = line.get("body") or {}
            behaviour = self.server.state.next_behaviour(body.get("model"))
            answer = build_answer(body, behaviour, self.server.tokenizer)
            completion = openai_completion(
                body, answer, self.server.tokenizer, omit_usage=bool(behaviour.get("omit_usage"))
            )
            response = {"status_code": 200, "request_id": new_id("req_"), "body": completion}
            out.append(
                {
                    "id": new_id("batch_req_"),
                    "custom_id": line.get("custom_id"),
                    "response": response,
                    "error": None,
                }
            )
        data = b"".join(orjson.dumps(o) + b"\n" for o in out)
        meta = self._store(data, f"{batch['id']}_output.jsonl", "batch_output")
        batch.update(status="completed", completed_at=int(time.time()), output_file_id=meta["id"])
        batch["request_counts"].update(total=len(out), completed=len(out), failed=0)


class FakeMessageBatches:
    """Anthropic Message Batches: in_progress on creation, ended on the second retrieve."""

    def __init__(self, server: FakeProviderApp) -> None:
        self.server = server
        self.batches: dict[str, dict[str, Any]] = {}
        self.results: dict[str, bytes] = {}

    def _log(self, request: web.Request, body: Any = None) -> None:
        self.server.state.record(request.path, {k.lower(): v for k, v in request.headers.items()}, body)

    async def anthropic_create(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        self._log(request, body)
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return _json(anthropic_error(400, "requests: a non-empty list is required"), 400)
        batch = {
            "id": new_id("msgbatch_"),
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(requests),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ended_at": None,
            "results_url": None,
            "_requests": requests,
            "_polls": 0,
        }
        self.batches[batch["id"]] = batch
        return _json(self._public(batch))

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    async def anthropic_retrieve(self, request: web.Request) -> web.Response:
        self._log(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _json(anthropic_error(404, "no such batch"), 404)
        batch["_polls"] += 1
        if batch["processing_status"] == "in_progress" and batch["_polls"] >= 2:
            self._end(batch, str(request.url.origin()))
        return _json(self._public(batch))

    async def anthropic_cancel(self, request: web.Request) -> web.Response:
        self._log(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _json(anthropic_error(404, "no such batch"), 404)
        if batch["processing_status"] == "in_progress":
            counts = batch["request_counts"]
            counts.update(canceled=counts["processing"], processing=0)
            batch["processing_status"] = "ended"
            self.results[batch["id"]] = b""
            batch["results_url"] = f"{request.url.origin()}/v1/messages/batches/{batch['id']}/results"
        return _json(self._public(batch))

    async def anthropic_results(self, request: web.Request) -> web.Response:
        self._log(request)
        data = self.results.get(request.match_info["id"])
        if data is None:
            return _json(anthropic_error(404, "results are not ready"), 404)
        return web.Response(body=data, content_type="application/binary")

    def _end(self, batch: dict[str, Any], origin: str) -> None:
        lines = []
        for item in batch["_requests"]:
            params = item.get("params") or {}
            behaviour = self.server.state.next_behaviour(params.get("model"))
            answer = build_answer(params, behaviour, self.server.tokenizer)
            if self.server.prefix_cache is not None and behaviour.get("cached_tokens") is None:
                answer.cached_tokens, answer.cache_write_tokens = self.server.prefix_cache.anthropic(
                    params, answer.prompt_tokens
                )
            message = anthropic_message(params, answer, omit_usage=bool(behaviour.get("omit_usage")))
            result = {"type": "succeeded", "message": message}
            lines.append(orjson.dumps({"custom_id": item.get("custom_id"), "result": result}))
        self.results[batch["id"]] = b"\n".join(lines) + b"\n"
        batch["request_counts"].update(processing=0, succeeded=len(lines))
        batch.update(
            processing_status="ended",
            ended_at=time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            results_url=f"{origin}/v1/messages/batches/{batch['id']}/results",
        )


def register_batch_routes(server: FakeProviderApp) -> FakeBatchApi:
    """Add the batch endpoints to a fake server's app."""
    api = FakeBatchApi(server)
    api.register(server.app)
    return api
