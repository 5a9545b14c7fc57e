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
    from thrifty.promptcache.setup import install as prompt_cache

    prompt_cache(gateway)  # provider prompt caching: sticky deployments, Anthropic breakpoints (no stage)
    from thrifty.tenancy.runtime import build_stage as limits_stage

    limits = limits_stage(gateway)  # outermost: rate limits and budget reservations per key
    if limits is not None:
        stages.append(limits)
    from thrifty.cache.stage import CacheStage

    cache = CacheStage.from_gateway(gateway)  # exact → semantic cache; stores answers on the way back
    if cache is not None:
        stages.append(cache)
    from thrifty.compress.stage import build_stage as compress_stage

    compress = compress_stage(gateway)  # normalise / extract / memoised summary of the prompt
    if compress is not None:
        stages.append(compress)
    from thrifty.routing.build import build_stage as plan_stage

    plan = plan_stage(gateway)  # plan: virtual models → route or cascade
    if plan is not None:
        stages.append(plan)
    from thrifty.batching.coalesce import build_stage as batcher_stage

    batcher = batcher_stage(gateway)  # live micro-batches of concurrent small requests (opt-in)
    if batcher is not None:
        stages.append(batcher)
    return stages
