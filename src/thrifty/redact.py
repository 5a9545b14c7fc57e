"""Replacing secrets in text: log lines, and upstream error messages before a client or the ledger
sees them (some providers echo the key they were sent: "Incorrect API key provided: sk-…")."""

from __future__ import annotations

import re
from collections.abc import Iterable

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)\b(sk|tk|pk|rk)-[A-Za-z0-9_-]{8,}"),
)
_SHORTEST = 6
"""Secrets shorter than this are not looked for (they would match ordinary words)."""


class Redactor:
    """Replaces the given secrets, bearer tokens and `sk-…`-style keys in text with `[redacted]`."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= _SHORTEST}, key=len, reverse=True)
        self._exact = [re.compile(re.escape(s), re.IGNORECASE) for s in self.secrets]

    def __call__(self, text: str) -> str:
        for secret, pattern in zip(self.secrets, self._exact, strict=True):
            text = _cut_tail(pattern.sub("[redacted]", text), secret)
        text = _SECRET_PATTERNS[0].sub(r"\1[redacted]", text)
        return _SECRET_PATTERNS[1].sub("[redacted]", text)


def _cut_tail(text: str, secret: str) -> str:
    """`text` without a secret's beginning at its very end: a message cut short mid-key."""
    if text[-_SHORTEST:].lower() not in secret.lower():  # the common case, decided in one look
        return text
    for size in range(min(len(secret) - 1, len(text)), _SHORTEST - 1, -1):
        if text[-size:].lower() == secret[:size].lower():
            return text[:-size] + "[redacted]"
    return text
