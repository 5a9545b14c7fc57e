"""OpenAI `/v1/files` and `/v1/batches` endpoints, so the OpenAI SDK's batch workflow works through
thrifty. Jobs are stored (`thrifty.batching.store`) and run by a `JobRunner` started with the app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.batching import budget
from thrifty.batching.jobs import JobRunner, batch_object
from thrifty.batching.lines import ENDPOINTS, parse_lines
from thrifty.batching.store import BatchStore
from thrifty.errors import InvalidRequest
from thrifty.server.body import read_json
from thrifty.server.responses import json_response
from thrifty.types import Tenant

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

MAX_FILE_BYTES = 200 * 1024 * 1024
WINDOWS = ("24h",)


def _not_found(what: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"No such {what}.", param=param, code="not_found", status=404)


def store_path(gateway: Gateway) -> str:
    jobs = gateway.config.batching.jobs
    if jobs.store:
        return jobs.store
    ledger = gateway.config.ledger
    if ledger.backend == "sqlite":
        path = Path(ledger.path)
        return str(path.with_name(f"{path.stem}-batches.db"))
    return "thrifty-batches.db"


class BatchApi:
    """The handlers, the job store and the runner of one gateway."""

    def __init__(self, gateway: Gateway, tenant_of: Callable[[Request], Awaitable[Tenant]]) -> None:
        self.gateway = gateway
        self.tenant_of = tenant_of
        self.store = BatchStore(store_path(gateway))
        self.runner = JobRunner(gateway, gateway.config.batching.jobs, self.store)
        self.max_body = gateway.config.server.max_body_bytes

    async def start(self) -> None:
        await self.runner.start()

    async def aclose(self) -> None:
        await self.runner.aclose()
        self.store.close()

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/files", self.list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", self.get_file, methods=["GET"]),
            Route("/v1/files/{file_id}", self.delete_file, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", self.file_content, methods=["GET"]),
            Route("/v1/batches", self.create_batch, methods=["POST"]),
            Route("/v1/batches", self.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self.get_batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self.cancel_batch, methods=["POST"]),
        ]

    # ------------------------------------------------------------------ files

    async def upload(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception as exc:  # malformed multipart bodies
            raise InvalidRequest(f"expected a multipart/form-data upload: {exc}", param="file") from None
        upload, purpose = form.get("file"), form.get("purpose")
        if purpose != "batch":
            raise InvalidRequest("Only purpose 'batch' is supported.", param="purpose")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("A 'file' part is required.", param="file")
        data = await upload.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidRequest("The file is larger than 200 MB.", param="file", status=413)
        return json_response(self.store.add_file(tenant.id, data, upload.filename or "input.jsonl", "batch"))

    async def list_files(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        data = self.store.files(tenant.id, request.query_params.get("purpose"))
        return json_response({"object": "list", "data": data, "has_more": False})

    async def get_file(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        found = self.store.file(tenant.id, request.path_params["file_id"])
        if found is None:
            raise _not_found("file", "file_id")
        return json_response(found)

    async def delete_file(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        file_id = request.path_params["file_id"]
        if not self.store.delete_file(tenant.id, file_id):
            raise _not_found("file", "file_id")
        return json_response({"id": file_id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        data = self.store.content(tenant.id, request.path_params["file_id"])
        if data is None:
            raise _not_found("file", "file_id")
        return Response(data, media_type="application/octet-stream")

    # ------------------------------------------------------------------ batches

    async def create_batch(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        body = await read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        window, metadata = body.get("completion_window", "24h"), body.get("metadata")
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(f"endpoint must be one of {list(ENDPOINTS)}.", param="endpoint")
        if window not in WINDOWS:
            raise InvalidRequest("completion_window must be '24h'.", param="completion_window")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidRequest("metadata must be an object.", param="metadata")
        found = self.store.file(tenant.id, file_id) if isinstance(file_id, str) else None
        if found is None and isinstance(file_id, str):
            raise _not_found("file", "input_file_id")  # 404, as `files.retrieve` of the same id
        if found is None or found["purpose"] != "batch":
            raise InvalidRequest(
                "input_file_id must name a file uploaded with purpose 'batch'.", param="input_file_id"
            )
        batch = batch_object(file_id, endpoint, window, metadata)
        data = await asyncio.to_thread(self.store.content, tenant.id, file_id)
        lines, errors = await asyncio.to_thread(parse_lines, data or b"", endpoint, tenant)
        if errors:  # like OpenAI: the batch exists and failed validation (and holds nothing)
            lines = []
            batch.update(
                status="failed", failed_at=batch["created_at"], errors={"object": "list", "data": errors}
            )
        # a key whose budget is spent or held gets the live-chat 429; else the batch holds its estimate
        await budget.admit(self.gateway, tenant, batch["id"], lines, forwarded=self.runner.forwards(lines))
        try:
            self.store.add_batch(tenant.id, tenant.key_id, batch)
        except BaseException:
            await budget.release(self.gateway, tenant, batch["id"])
            raise
        self.runner.wake()
        return json_response(batch)

    async def _batch(self, request: Request) -> tuple[Tenant, dict[str, Any]]:
        tenant = await self.tenant_of(request)
        found = self.store.batch(request.path_params["batch_id"], tenant.id)
        if found is None:
            raise _not_found("batch", "batch_id")
        return tenant, found

    async def get_batch(self, request: Request) -> Response:
        return json_response((await self._batch(request))[1])

    async def list_batches(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        try:
            limit = max(1, min(100, int(request.query_params.get("limit", "20"))))
        except ValueError:
            raise InvalidRequest("limit must be an integer.", param="limit") from None
        data = self.store.batches(tenant.id, limit + 1, request.query_params.get("after"))
        page = data[:limit]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(data) > limit,
            }
        )

    async def cancel_batch(self, request: Request) -> Response:
        tenant = await self.tenant_of(request)
        batch = self.store.cancel(request.path_params["batch_id"], tenant.id)  # atomic with the runner
        if batch is None:
            raise _not_found("batch", "batch_id")
        if batch["status"] != "cancelling":  # finalizing (every line answered) or final
            raise InvalidRequest(f"Cannot cancel a batch with status '{batch['status']}'.", param="batch_id")
        self.runner.cancelled(batch["id"])
        return json_response(batch)
