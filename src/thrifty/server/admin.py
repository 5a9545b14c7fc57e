"""Admin API for virtual keys (`/admin/keys`), guarded by the master key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.errors import AuthenticationError, InvalidRequest, PermissionDenied, ThriftyError
from thrifty.server.body import read_json
from thrifty.server.responses import json_response
from thrifty.tenancy.auth import Authenticator
from thrifty.tenancy.budgets import windows
from thrifty.tenancy.errors import StateError
from thrifty.tenancy.keys import VirtualKey
from thrifty.tenancy.runtime import Tenancy, tenancy_of
from thrifty.tenancy.spec import create_fields, update_fields

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

_MAX_BODY = 64 * 1024


class KeyNotFound(ThriftyError):
    status = 404
    type = "invalid_request_error"
    code = "key_not_found"


class AdminApi:
    def __init__(self, gateway: Gateway) -> None:
        self.master_key = gateway.config.server.master_key
        self.tenancy = tenancy_of(gateway)
        self.auth = Authenticator(self.master_key)

    def _guard(self, request: Request) -> Tenancy:
        if self.master_key is None:
            raise PermissionDenied("The admin API is disabled: set server.master_key.", code="admin_disabled")
        token = self.auth.token(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if token is None:
            raise AuthenticationError("The admin API needs the master key as 'Authorization: Bearer <key>'.")
        if not self.auth.is_master(token):
            raise PermissionDenied("The admin API needs the master key.", code="master_key_required")
        if self.tenancy is None:
            raise PermissionDenied(
                "Virtual keys are disabled (tenancy.enabled: false).", code="keys_disabled"
            )
        return self.tenancy

    async def _key(self, tenancy: Tenancy, request: Request) -> VirtualKey:
        key_id = request.path_params["key_id"]
        key = await tenancy.directory.get(key_id)
        if key is None:
            raise KeyNotFound(f"No key with id {key_id!r}.", param="key_id")
        return key

    async def create(self, request: Request) -> Response:
        tenancy = self._guard(request)
        tenant, fields = create_fields(await read_json(request, _MAX_BODY))
        token, key = await tenancy.directory.create(tenant, **fields)
        return json_response({**key.public(), "key": token}, status=201)

    async def list(self, request: Request) -> Response:
        tenancy = self._guard(request)
        tenant = request.query_params.get("tenant")
        include_revoked = request.query_params.get("include_revoked", "true").lower() not in ("0", "false")
        keys = await tenancy.directory.list(tenant, include_revoked)
        return json_response({"object": "list", "data": [k.public() for k in keys]})

    async def get(self, request: Request) -> Response:
        tenancy = self._guard(request)
        key = await self._key(tenancy, request)
        return json_response({**key.public(), "usage": await self._usage(tenancy, key)})

    async def update(self, request: Request) -> Response:
        tenancy = self._guard(request)
        key = await self._key(tenancy, request)
        changes = update_fields(await read_json(request, _MAX_BODY), key)
        if not changes:
            raise InvalidRequest("Nothing to change: send at least one field.")
        updated = await tenancy.directory.update(key.id, changes)
        assert updated is not None
        return json_response(updated.public())

    async def revoke(self, request: Request) -> Response:
        tenancy = self._guard(request)
        key = await self._key(tenancy, request)
        revoked = await tenancy.directory.revoke(key.id)
        assert revoked is not None
        return json_response(revoked.public())

    async def _usage(self, tenancy: Tenancy, key: VirtualKey) -> dict[str, float] | None:
        wins = windows(key.budgets)
        if not wins:
            return None
        try:
            return await tenancy.budgets.usage(key.id, wins)
        except StateError:
            return None


def admin_routes(gateway: Gateway) -> list[Route]:
    api = AdminApi(gateway)
    return [
        Route("/admin/keys", api.create, methods=["POST"]),
        Route("/admin/keys", api.list, methods=["GET"]),
        Route("/admin/keys/{key_id}", api.get, methods=["GET"]),
        Route("/admin/keys/{key_id}", api.update, methods=["PATCH"]),
        Route("/admin/keys/{key_id}", api.revoke, methods=["DELETE"]),
    ]
