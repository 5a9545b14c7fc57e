"""Virtual models through `thrifty serve` + the fake provider: rules routing, hints, cascades."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty.pricing.catalog import Catalog

pytestmark = pytest.mark.e2e
CATALOG = Catalog.bundled()


def routing_config(fake) -> dict:
    config = base_config(fake)
    config["routing"] = {
        "virtual_models": {
            "thrifty/auto": {
                "rules": {"table": {"code": "gpt-4o", "math": "gpt-4o", "default": "gpt-4o-mini"}},
                "baseline": "gpt-4o",
            },
            "thrifty/cascade": {
                "cascade": {
                    "tiers": ["gpt-4o-mini", "gpt-4o"],
                    "gates": [{"type": "format"}, {"type": "heuristic"}],
                }
            },
        }
    }
    return config


@pytest.fixture
def gw(gateway_factory, fake):
    return gateway_factory(routing_config(fake))


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)


def list_cost(model: str, prompt: int, completion: int) -> float:
    p = CATALOG.get(model)
    return (prompt * p.input + completion * p.output) / 1e6


def rows_of(gw, request_id: str, expect: int) -> list[dict]:
    deadline_rows = ledger_rows(gw.ledger_path, expect=expect)
    return [r for r in deadline_rows if r["request_id"] == request_id]


def test_rules_route_code_to_strong_and_chat_to_cheap(gw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/auto",
        messages=[{"role": "user", "content": "Fix this python bug:\n```\ndef f(: pass\n```"}],
    )
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    assert raw.headers["x-thrifty-route"] == "auto:code"
    raw2 = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/auto", messages=[{"role": "user", "content": "hello there!"}]
    )
    assert raw2.headers["x-thrifty-model"] == "gpt-4o-mini"
    usage = raw2.parse().usage
    row = rows_of(gw, raw2.headers["x-request-id"], 2)[0]
    assert row["requested_model"] == "thrifty/auto" and row["served_model"] == "gpt-4o-mini"
    assert row["route"] == "auto:chat"
    # baseline priced at the virtual model's baseline (gpt-4o), saving booked under routing
    baseline = list_cost("gpt-4o", usage.prompt_tokens, usage.completion_tokens)
    assert row["baseline_cost_usd"] == pytest.approx(baseline, rel=1e-6)
    assert row["saved_routing"] == pytest.approx(baseline - row["cost_usd"], rel=1e-6)
    assert row["saved_routing"] > 0 and row["saved_cascade"] == 0


def test_models_list_names_the_virtual_models_beside_the_real_ones(gw):
    ids = [m.id for m in client(gw).models.list()]
    assert {"thrifty/auto", "thrifty/cascade", "gpt-4o", "gpt-4o-mini"} <= set(ids)
    assert len(ids) == len(set(ids))


def test_task_hint_header_and_body_fields_are_stripped(gw, fake):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/auto",
        messages=[{"role": "user", "content": "hello there!"}],
        extra_headers={"x-thrifty-route-task": "code"},
        metadata={"thrifty_task": "chat", "team": "search"},
        extra_body={"thrifty": {"quality_target": 0.9}},
    )
    # the body's own hint wins over the header: metadata said chat
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    sent = fake.requests("/v1/chat/completions")[-1]["body"]
    assert "thrifty" not in sent and sent["metadata"] == {"team": "search"}
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/auto",
        messages=[{"role": "user", "content": "hello there!"}],
        extra_headers={"x-thrifty-route-task": "code"},
    )
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    assert "thrifty" not in fake.requests("/v1/chat/completions")[-1]["body"]


def test_bad_quality_target_is_a_400(gw):
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": "thrifty/auto", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-thrifty-quality-target": "lots"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "thrifty.quality_target"


def test_real_model_passes_through(gw, fake):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Fix this python bug please"}]
    )
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    row = rows_of(gw, raw.headers["x-request-id"], 1)[0]
    assert row["route"] is None and row["saved_routing"] == 0


def test_cascade_accepts_cheap_tier(gw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/cascade", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    assert raw.parse().choices[0].message.content == "echo: What is 2 + 2?"
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    rows = rows_of(gw, raw.headers["x-request-id"], 1)
    assert [r["status"] for r in rows] == ["ok"]
    assert (
        rows[0]["route"] == "cascade:tier1" and rows[0]["saved_cascade"] > 0 and rows[0]["saved_routing"] == 0
    )


def test_cascade_escalates_on_empty_answer_and_books_both(gw, fake):
    fake.script({"content": ""}, model="gpt-4o-mini")
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/cascade", messages=[{"role": "user", "content": "Explain monads"}]
    )
    assert raw.parse().choices[0].message.content == "echo: Explain monads"
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    rows = rows_of(gw, raw.headers["x-request-id"], 2)
    assert [(r["status"], r["served_model"]) for r in rows] == [("rejected", "gpt-4o-mini"), ("ok", "gpt-4o")]
    rejected, final = rows
    assert "empty answer" in rejected["error"] and rejected["cost_usd"] > 0 and rejected["final"] == 0
    assert final["final"] == 1 and final["route"] == "cascade:tier2"
    total = float(raw.headers["x-thrifty-cost-usd"])
    assert total == pytest.approx(rejected["cost_usd"] + final["cost_usd"], rel=1e-6)


def test_cascade_json_format_gate(gw, fake):
    fake.script({"content": '{"answer": 4}'}, model="gpt-4o")
    completion = client(gw).chat.completions.create(
        model="thrifty/cascade",
        messages=[{"role": "user", "content": "Return JSON with the answer to 2+2"}],
        response_format={"type": "json_object"},
    )
    # the cheap tier echoes plain text (not JSON): rejected, the strong tier's JSON is served
    assert completion.model == "gpt-4o" and completion.choices[0].message.content == '{"answer": 4}'


def test_streaming_cascade_accepted_tier_is_replayed(gw):
    chunks = list(
        client(gw).chat.completions.create(
            model="thrifty/cascade",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_streaming_cascade_escalation_is_well_formed_sse(gw, fake):
    fake.script({"content": "I don't know."}, model="gpt-4o-mini")
    with httpx.stream(
        "POST",
        gw.base_url + "/chat/completions",
        json={
            "model": "thrifty/cascade",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hard one"}],
        },
    ) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    events = [e for e in body.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    rows = ledger_rows(gw.ledger_path, expect=2)
    assert [(r["status"], r["served_model"]) for r in rows[-2:]] == [
        ("rejected", "gpt-4o-mini"),
        ("ok", "gpt-4o"),
    ]
    assert "hedges" in rows[-2]["error"]
    # the usage chunk's cost is the whole request's: the rejected tier counts
    usage = orjson.loads(events[-2].removeprefix("data: "))["usage"]
    assert usage["cost"] == pytest.approx(rows[-2]["cost_usd"] + rows[-1]["cost_usd"], rel=1e-6)


def test_learned_router_virtual_model(gateway_factory, fake, tmp_path):
    from tests.unit.test_routing_learned import synthetic_rows
    from thrifty.routing.data import from_rows
    from thrifty.routing.train import train

    model, _ = train(from_rows(synthetic_rows()).split()[0], None)
    path = model.save(tmp_path / "router.npz")
    config = routing_config(fake)
    config["routing"]["virtual_models"]["thrifty/learned"] = {
        "learned": {
            "path": str(path),
            "models": {"tiny": "gpt-4o-mini", "mid": "gpt-4o-mini", "huge": "gpt-4o"},
            "policy": "quality",
            "quality_target": 0.8,
        }
    }
    gw = gateway_factory(config)
    hard = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/learned", messages=[{"role": "user", "content": "question 1 about quantum word1"}]
    )
    easy = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/learned", messages=[{"role": "user", "content": "question 1 about poetry word1"}]
    )
    assert hard.headers["x-thrifty-model"] == "gpt-4o" and easy.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert easy.headers["x-thrifty-route"].startswith("learned:")
    row = rows_of(gw, easy.headers["x-request-id"], 2)[0]
    usage = easy.parse().usage
    # baseline: the most expensive candidate (gpt-4o), as no baseline is configured
    assert row["baseline_cost_usd"] == pytest.approx(
        list_cost("gpt-4o", usage.prompt_tokens, usage.completion_tokens), rel=1e-6
    )
    # a per-request quality target overrides the configured one: any model meets 0.01 → the cheapest
    lax = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/learned",
        messages=[{"role": "user", "content": "question 1 about quantum word1"}],
        extra_headers={"x-thrifty-quality-target": "0.01"},
    )
    assert lax.headers["x-thrifty-model"] == "gpt-4o-mini"


def test_bad_routing_hints_are_400s(gw):
    for hint, param in (
        ({"quality_target": True}, "thrifty.quality_target"),
        ({"task": "bogus"}, "thrifty.task"),
    ):
        resp = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "thrifty/auto", "messages": [{"role": "user", "content": "hi"}], "thrifty": hint},
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["param"] == param


def test_streamed_routed_answers_name_their_route(gw, fake):
    stream = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/auto", messages=[{"role": "user", "content": "Say hello"}], stream=True
    )
    assert stream.headers["x-thrifty-route"] == "auto:chat"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices) == "echo: Say hello"
    fake.script({"content": ""}, model="gpt-4o-mini")  # the cheap tier fails its gate: the last tier streams
    escalated = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/cascade", messages=[{"role": "user", "content": "Explain monads"}], stream=True
    )
    assert escalated.headers["x-thrifty-route"] == "cascade:tier2"
    assert "".join(c.choices[0].delta.content or "" for c in escalated.parse() if c.choices)


def cascade_with(fake, gates: list[dict]) -> dict:
    config = routing_config(fake)
    config["routing"]["virtual_models"]["thrifty/gated"] = {
        "cascade": {"tiers": ["gpt-4o-mini", "gpt-4o"], "gates": gates}
    }
    return config


def test_judge_calls_count_in_the_request_cost(gateway_factory, fake):
    gw = gateway_factory(cascade_with(fake, [{"type": "format"}, {"type": "judge", "model": "gpt-4o-mini"}]))
    fake.script({"content": "Paris is the capital."}, {"content": "9"}, model="gpt-4o-mini")
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/gated", messages=[{"role": "user", "content": "Capital of France?"}]
    )
    assert raw.parse().choices[0].message.content == "Paris is the capital."
    rows = rows_of(gw, raw.headers["x-request-id"], 2)
    assert sorted((r["status"], r["error"] or "") for r in rows) == [("ok", ""), ("rejected", "judge")]
    judge = next(r for r in rows if r["status"] == "rejected")
    assert judge["cost_usd"] > 0
    assert float(raw.headers["x-thrifty-cost-usd"]) == pytest.approx(
        sum(r["cost_usd"] for r in rows), rel=1e-6
    )
    assert raw.headers["x-thrifty-attempts"] == "2"  # the tier and its judge

    fake.script({"content": "Lyon, probably."}, {"content": "2"}, model="gpt-4o-mini")  # graded down
    raw = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/gated", messages=[{"role": "user", "content": "Capital of France, really?"}]
    )
    assert raw.headers["x-thrifty-model"] == "gpt-4o"
    rows = rows_of(gw, raw.headers["x-request-id"], 5)
    assert len(rows) == 3  # the tier's answer, the judge's grade, the final tier
    assert float(raw.headers["x-thrifty-cost-usd"]) == pytest.approx(
        sum(r["cost_usd"] for r in rows), rel=1e-6
    )
    assert raw.headers["x-thrifty-attempts"] == "3"


def test_a_logprob_gate_asks_the_tiers_for_logprobs(gateway_factory, fake):
    gw = gateway_factory(cascade_with(fake, [{"type": "logprob", "min_confidence": 0.5}]))
    fake.script({"logprob": -2.0}, model="gpt-4o-mini")  # mean token probability e^-2 ≈ 0.14: unsure
    unsure = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/gated", messages=[{"role": "user", "content": "Guess a number"}]
    )
    assert unsure.headers["x-thrifty-model"] == "gpt-4o"  # escalated though the client asked no logprobs
    sent = fake.requests("/v1/chat/completions")
    assert sent[-2]["body"]["logprobs"] is True and "logprobs" not in sent[-1]["body"]
    assert unsure.parse().choices[0].logprobs is None
    fake.script({"logprob": -0.05}, model="gpt-4o-mini")
    sure = client(gw).chat.completions.with_raw_response.create(
        model="thrifty/gated", messages=[{"role": "user", "content": "Two plus two?"}]
    )
    assert sure.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert sure.parse().choices[0].logprobs is None  # not asked for, not returned
