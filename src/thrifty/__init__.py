"""thrifty: an OpenAI-compatible LLM gateway that cuts what you pay without cutting quality."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Gateway", "SyncGateway", "__version__"]

if TYPE_CHECKING:
    from thrifty.gateway import Gateway
    from thrifty.sync import SyncGateway


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from thrifty.gateway import Gateway

        return Gateway
    if name == "SyncGateway":
        from thrifty.sync import SyncGateway

        return SyncGateway
    raise AttributeError(name)
