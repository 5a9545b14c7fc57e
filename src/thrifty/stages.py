"""Builds the pipeline stages the config asks for, in request-path order.

Order (DESIGN.md): exact cache → semantic cache → compress → plan (route | cascade) → [batcher] →
provider pool. Each lever adds its stage here; the Gateway only composes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thrifty.pipeline import Stage

if TYPE_CHECKING:
    from thrifty.gateway import Gateway


def build_stages(gateway: Gateway) -> list[Stage]:
    stages: list[Stage] = []
    return stages
