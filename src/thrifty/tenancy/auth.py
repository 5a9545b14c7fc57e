"""Resolves the caller from the Authorization header."""

from __future__ import annotations

import hmac

from thrifty.errors import AuthenticationError
from thrifty.types import Tenant


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """With no master key, every caller is the default tenant. With one, callers must present it."""

    def __init__(self, master_key: str | None, require_auth: bool = False) -> None:
        self.master_key = master_key
        self.require_auth = require_auth or master_key is not None

    def authenticate(self, authorization: str | None, api_key_header: str | None = None) -> Tenant:
        token = bearer(authorization) or api_key_header
        if not self.require_auth:
            return Tenant()
        if token is None:
            raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
        if self.master_key is not None and hmac.compare_digest(token.encode(), self.master_key.encode()):
            return Tenant(id="default", key_id="master")
        raise AuthenticationError("Invalid API key.")
