"""Two `thrifty serve` replicas share the cache: exact entries over Redis, exact and semantic entries
over Postgres with pgvector (real servers from tests/support/stores.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e


def ask(gw: Any, text: str) -> Any:
    sdk = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    return sdk.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}]
    )


def replicas(gateway_factory: Any, fake: Any, tmp_path: Path, cache: dict[str, Any]) -> tuple[Any, Any]:
    out = []
    for name in ("a", "b"):
        config = base_config(fake)
        # each replica has its own disk: nothing but the shared stores connects them
        config["ledger"] = {"path": str(tmp_path / f"ledger-{name}.db")}
        config["cache"] = {"enabled": True, "path": str(tmp_path / f"cache-{name}.db"), **cache}
        out.append(gateway_factory(config))
    return out[0], out[1]


def upstream_calls(fake: Any) -> int:
    return len(fake.requests("/v1/chat/completions"))


def test_replicas_share_exact_entries_over_redis(gateway_factory, fake, tmp_path, redis_url):
    a, b = replicas(gateway_factory, fake, tmp_path, {"backend": "redis", "redis_url": redis_url})
    assert ask(a, "shared over redis").headers["x-thrifty-cache"] == "miss"
    hit = ask(b, "shared over redis")
    assert hit.headers["x-thrifty-cache"] == "hit-exact"
    assert hit.parse().choices[0].message.content == "echo: shared over redis"
    assert ask(a, "only on b first").headers["x-thrifty-cache"] == "miss"
    assert upstream_calls(fake) == 2
    row = ledger_rows(b.ledger_path, expect=1)[0]
    assert row["status"] == "cache_hit" and row["cost_usd"] == 0 and row["saved_cache_exact"] > 0


def test_replicas_share_exact_and_semantic_entries_over_postgres(
    gateway_factory, fake, tmp_path, postgres_dsn
):
    cache = {"backend": "postgres", "postgres_dsn": postgres_dsn, "semantic": True, "verifier_cosine": 0.9}
    a, b = replicas(gateway_factory, fake, tmp_path, cache)
    assert ask(a, "What is the capital of France?").headers["x-thrifty-cache"] == "miss"
    assert ask(b, "What is the capital of France?").headers["x-thrifty-cache"] == "hit-exact"
    paraphrase = ask(b, "what is the capital city of france?")  # cosine 0.96 on MiniLM
    assert paraphrase.headers["x-thrifty-cache"] == "hit-semantic"
    assert paraphrase.parse().choices[0].message.content == "echo: What is the capital of France?"
    assert ask(b, "What is the capital of Germany?").headers["x-thrifty-cache"] == "miss"  # cosine 0.66
    assert upstream_calls(fake) == 2
    rows = ledger_rows(b.ledger_path, expect=3)
    semantic = [r for r in rows if r["saved_cache_semantic"] > 0]
    assert len(semantic) == 1 and semantic[0]["cost_usd"] == 0
