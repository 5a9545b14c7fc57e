"""Routes: `/dashboard` (the page), `/dashboard/api/summary` (its data), `/dashboard/static/*`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from thrifty.errors import AuthenticationError
from thrifty.ledger.report import Filters
from thrifty.server.dashboard.access import COOKIE, AdminGate
from thrifty.server.dashboard.summary import filters_from_query, summary
from thrifty.server.responses import json_response

if TYPE_CHECKING:
    from thrifty.gateway import Gateway

STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}
LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>thrifty · sign in</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body class="login"><form method="get" action="/dashboard" class="card">
<h1>thrifty</h1><p>Enter the admin (master) key to open the dashboard.</p>
<input type="password" name="key" placeholder="master key" autofocus required>
<button type="submit">Open dashboard</button>{error}</form></body></html>"""


class Dashboard:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.gate = AdminGate(gateway.config.server.master_key)

    async def page(self, request: Request) -> Response:
        key = request.query_params.get("key")
        if key is not None and not self.gate.open:
            if not self.gate.is_key(key):
                return self._login(error=True)
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "key"])
            target = "/dashboard" + (f"?{rest}" if rest else "")
            response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
            response.set_cookie(
                COOKIE,
                self.gate.cookie_value(),
                max_age=7 * 86400,
                path="/dashboard",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response
        if not self.gate.allows(request):
            return self._login(error=False)
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=SECURITY_HEADERS)

    def _login(self, *, error: bool) -> Response:
        message = '<p class="error">That key is not valid.</p>' if error else ""
        return HTMLResponse(LOGIN_PAGE.format(error=message), status_code=401, headers=SECURITY_HEADERS)

    async def api_summary(self, request: Request) -> Response:
        if not self.gate.allows(request):
            raise AuthenticationError("The dashboard needs the master key (bearer token or sign-in cookie).")
        filters = filters_from_query(request.query_params, now=time.time())
        data = await run_in_threadpool(self._summary, filters)
        return json_response(data, headers={"cache-control": "no-store"})

    def _summary(self, filters: Filters) -> dict[str, Any]:
        self.gateway.ledger.flush(timeout=2.0)
        return summary(self.gateway.ledger, filters, baseline_model=self.gateway.config.baseline_model)


def dashboard_routes(gateway: Gateway) -> list[BaseRoute]:
    dashboard = Dashboard(gateway)
    return [
        Route("/dashboard", dashboard.page, methods=["GET"]),
        Route("/dashboard/", dashboard.page, methods=["GET"]),
        Route("/dashboard/api/summary", dashboard.api_summary, methods=["GET"]),
        Mount("/dashboard/static", app=StaticFiles(directory=STATIC), name="dashboard-static"),
    ]
