"""Admin access to the dashboard: the master key as a bearer token, a `?key=` link, or its cookie."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from thrifty.tenancy.auth import bearer

COOKIE = "thrifty_dashboard"


class AdminGate:
    """Open when no master key is configured; otherwise the caller must prove they hold it."""

    def __init__(self, master_key: str | None) -> None:
        self.master_key = master_key

    @property
    def open(self) -> bool:
        return self.master_key is None

    def cookie_value(self) -> str:
        """A token derived from the key (the key itself never goes into the cookie)."""
        assert self.master_key is not None
        return hmac.new(self.master_key.encode(), b"thrifty-dashboard-v1", hashlib.sha256).hexdigest()

    def is_key(self, token: str | None) -> bool:
        if self.master_key is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.master_key.encode())

    def allows(self, request: Request) -> bool:
        if self.open:
            return True
        if self.is_key(bearer(request.headers.get("authorization"))):
            return True
        cookie = request.cookies.get(COOKIE)
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.cookie_value().encode())
