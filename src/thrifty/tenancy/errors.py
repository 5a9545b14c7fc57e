"""Errors of the tenancy layer, in the OpenAI error shape."""

from __future__ import annotations

from thrifty.errors import ThriftyError


class BudgetExceeded(ThriftyError):
    """The key's budget cannot cover this request's worst-case cost (429, or 402 by config)."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class StateUnavailable(ThriftyError):
    """Shared state (Redis / Postgres) is unreachable and the configured behaviour is to fail closed."""

    status = 503
    type = "api_error"
    code = "state_unavailable"


class StateError(Exception):
    """A backend could not reach its store; the caller decides whether to fail open or closed."""
