"""The stable prefix of a chat request and its fingerprint.

Providers cache input prefixes, so the part of a request that repeats across requests — the tools,
then the leading system/developer messages — must reach them byte-identical. thrifty never reorders
it: tools stay in the order given, messages keep their keys in the order given (orjson preserves dict
order), and no stage rewrites it per request (see `thrifty.compress.prefix`). `prefix_key` hashes
that prefix so requests sharing it can be sent to the same deployment (sticky routing).
"""

from __future__ import annotations

import hashlib

import orjson

from thrifty.types import Body

PREFIX_ROLES = frozenset({"system", "developer"})


def stable_prefix(body: Body) -> list[Body]:
    """The leading system/developer messages of a request, as given."""
    out: list[Body] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") not in PREFIX_ROLES:
            break
        out.append(message)
    return out


def prefix_bytes(body: Body) -> bytes:
    """Canonical bytes of the stable prefix: tools then leading system messages, in the given order."""
    tools = body.get("tools") or []
    system = stable_prefix(body)
    if not tools and not system:
        return b""
    return orjson.dumps({"tools": tools, "system": system})


def prefix_key(body: Body) -> str | None:
    """A fingerprint of the stable prefix, or None when the request has none."""
    raw = prefix_bytes(body)
    if not raw:
        return None
    return hashlib.blake2b(raw, digest_size=16).hexdigest()
