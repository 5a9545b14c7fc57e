"""Can a model take a request at all? Known before anything is sent or paid for.

Some providers cannot express some requests (`Provider.refuse`: Anthropic's translation refuses `n > 1`,
the legacy `functions` / `function_call` and audio output).
The provider pool skips such a deployment for the next one or a fallback model; a cascade asks here
first, so it skips a tier that cannot take the request before paying for an earlier one.

Only request-level refusals are checked (cheap: no message is translated). A refusal that depends on
the messages' contents is found when the tier is called, and the cascade skips the tier then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thrifty.errors import InvalidRequest
from thrifty.types import Body

if TYPE_CHECKING:
    from thrifty.providers.pool import ProviderPool


def refusal(pool: ProviderPool, model: str, body: Body) -> InvalidRequest | None:
    """None when a deployment of `model` or of one of its fallbacks can express `body`; otherwise the
    first deployment's refusal (a 400 naming the parameter)."""
    first: InvalidRequest | None = None
    for _, deployment in pool.candidates(model):
        try:
            deployment.provider.refuse(body)
        except InvalidRequest as exc:
            first = first or exc
            continue
        return None
    return first
