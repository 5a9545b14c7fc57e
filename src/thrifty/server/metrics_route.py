"""`GET /metrics`: Prometheus exposition of the gateway's metrics (master key required if set)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thrifty.errors import AuthenticationError
from thrifty.metrics import CONTENT_TYPE
from thrifty.server.dashboard.access import AdminGate

if TYPE_CHECKING:
    from thrifty.gateway import Gateway


def metrics_routes(gateway: Gateway) -> list[BaseRoute]:
    gate = AdminGate(gateway.config.server.master_key)

    async def metrics(request: Request) -> Response:
        if not gate.allows(request):
            raise AuthenticationError("/metrics needs the master key as a bearer token.")
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    return [Route("/metrics", metrics, methods=["GET"])]
