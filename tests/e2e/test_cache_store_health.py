"""`thrifty serve` with its exact cache store (Redis) down: answers go on as misses, and `/readyz` and
`/metrics` say that the store is down (the replica stays ready, as with a ledger that cannot write)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import base_config

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def store_up(gw: Any) -> dict[str, float]:
    text = httpx.get(gw.url + "/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "thrifty_cache_store_up")
    return {s.labels["store"]: s.value for s in family.samples}


def ask(gw: Any, text: str) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30)


def test_readyz_and_metrics_show_a_cache_store_that_is_down(gateway_factory, fake, tmp_path) -> None:
    config = base_config(fake)
    config["cache"] = {"enabled": True, "backend": "redis", "redis_url": f"redis://127.0.0.1:{closed_port()}/0",
                       "path": str(tmp_path / "cache.db")}  # fmt: skip
    gw = gateway_factory(config)
    ready = httpx.get(gw.url + "/readyz").json()
    assert ready["checks"]["cache"] == "ok" and store_up(gw) == {"exact": 1.0}  # not tried yet

    assert ask(gw, "a question").status_code == 200  # the store fails: answered upstream, as a miss
    ready = httpx.get(gw.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["checks"]["cache"].startswith("exact store down for ")
    assert ready.json()["checks"]["cache"].endswith("s (ConnectionError)")
    assert store_up(gw) == {"exact": 0.0}


def test_healthy_stores_are_ok(gateway_factory, fake, tmp_path) -> None:
    config = base_config(fake)
    config["cache"] = {"enabled": True, "semantic": True, "path": str(tmp_path / "cache.db")}
    gw = gateway_factory(config)
    assert ask(gw, "a question").status_code == 200
    assert httpx.get(gw.url + "/readyz").json()["checks"]["cache"] == "ok"
    assert store_up(gw) == {"exact": 1.0, "semantic": 1.0}
