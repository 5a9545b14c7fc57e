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

import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from thrifty.batching.prompt import parse_items
from thrifty.testing.fake_wire import (
    ECHO_CHARS,
    ECHO_PREFIX,
    build_answer,
    new_id,
    openai_completion,
    openai_error,
)

if TYPE_CHECKING:
    from thrifty.testing.fake_provider import FakeProviderApp


def batched_answer(text: str) -> str | None:
    """The JSON-array answer to a micro-batch prompt, or None when `text` is not one."""
    items = parse_items(text)
    if items is None:
        return None
    answers = [{"id": i, "answer": ECHO_PREFIX + item[:ECHO_CHARS]} for i, item in enumerate(items, 1)]
    return orjson.dumps(answers).decode()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class FakeBatchApi:
    """Files and batches held in memory by one fake server."""

    def __init__(self, server: FakeProviderApp) -> None:
        self.server = server
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def register(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}", self.file)
        app.router.add_get("/v1/files/{id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list)
        app.router.add_get("/v1/batches/{id}", self.retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self.cancel)

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
            self.batches[batch["id"]] = batch
        return _json(batch)

    async def list(self, request: web.Request) -> web.Response:
        self._log(request)
        data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        return _json({"object": "list", "data": data, "has_more": False})

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
        return _json(batch)

    async def cancel(self, request: web.Request) -> web.Response:
        self._log(request)
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return _json(openai_error(404, "no such batch"), 404)
        if batch["status"] in ("validating", "in_progress"):
            batch.update(status="cancelled", cancelled_at=int(time.time()))
        return _json(batch)

    def _lines(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        raw = self.files[batch["input_file_id"]][1]
        return [orjson.loads(line) for line in raw.splitlines() if line.strip()]

    def _complete(self, batch: dict[str, Any]) -> None:
        out = []
        for line in self._lines(batch):
            body = line.get("body") or {}
            behaviour = self.server.state.next_behaviour(body.get("model"))
            answer = build_answer(body, behaviour, self.server.tokenizer)
            completion = openai_completion(body, answer, self.server.tokenizer, omit_usage=False)
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


def register_batch_routes(server: FakeProviderApp) -> FakeBatchApi:
    """Add the batch endpoints to a fake server's app."""
    api = FakeBatchApi(server)
    api.register(server.app)
    return api
