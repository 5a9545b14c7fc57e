"""Resolves the caller from the Authorization (or x-api-key) header: master key or virtual key."""

from __future__ import annotations

import hmac

from thrifty.errors import AuthenticationError
from thrifty.tenancy.directory import KeyDirectory
from thrifty.tenancy.keys import looks_like_key
from thrifty.types import MASTER_TENANT, Tenant

MASTER_KEY_ID = "master"


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """With no master key and no virtual keys, every caller is the default tenant. Otherwise callers
    must present the master key or a valid virtual key."""

    def __init__(
        self, master_key: str | None, require_auth: bool = False, directory: KeyDirectory | None = None
    ) -> None:
        self.master_key = master_key
        self.directory = directory
        self.require_auth = require_auth or master_key is not None or directory is not None

    @staticmethod
    def token(authorization: str | None, api_key_header: str | None = None) -> str | None:
        return bearer(authorization) or (api_key_header.strip() if api_key_header else None)

    def is_master(self, token: str | None) -> bool:
        if self.master_key is None or token is None:
            return False
        return hmac.compare_digest(token.encode(), self.master_key.encode())

    async def authenticate(self, authorization: str | None, api_key_header: str | None = None) -> Tenant:
        if not self.require_auth:
            return Tenant()
        token = self.token(authorization, api_key_header)
        if token is None:
            raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
        if self.is_master(token):
            return Tenant(id=MASTER_TENANT, key_id=MASTER_KEY_ID)
        if self.directory is not None and looks_like_key(token):
            key = await self.directory.by_token(token)
            if key is not None:
                reason = key.unusable_reason()
                if reason is not None:
                    raise AuthenticationError(reason)
                return Tenant(id=key.tenant, key_id=key.id, allowed_models=key.models, metadata=key.metadata)
        raise AuthenticationError("Invalid API key.")
