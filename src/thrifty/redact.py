"""Replacing secrets in text: log lines, and upstream error messages before a client or the ledger
sees them (some providers echo the key they were sent: "Incorrect API key provided: sk-…")."""

from __future__ import annotations

import re
from collections.abc import Iterable

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"\b(sk|tk|pk|rk)-[A-Za-z0-9_-]{8,}"),
)


class Redactor:
    """Replaces the given secrets, bearer tokens and `sk-…`-style keys in text with `[redacted]`."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        text = _SECRET_PATTERNS[0].sub(r"\1[redacted]", text)
        return _SECRET_PATTERNS[1].sub("[redacted]", text)
