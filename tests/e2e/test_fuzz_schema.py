"""Schemathesis against the gateway's own OpenAPI document (`GET /openapi.json`), over real HTTP.

Valid and invalid (negative) requests for every operation: no 5xx, errors in the OpenAI shape
(response schema conformance), and every 200 chat answer has its ledger row."""

from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import given as hgiven
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.core.parameters import ParameterLocation

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e
MASTER = "sk-fuzz-master-0123456789"
EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory, fake_server):
    from tests.support.servers import start_gateway

    data = base_config(fake_server)
    data["server"] = {"master_key": MASTER, "max_body_bytes": 256 * 1024}
    gw = start_gateway(tmp_path_factory.mktemp("fuzz"), data)
    yield gw
    gw.stop()


def test_openapi_document_describes_the_api(fuzz_gateway):
    doc = httpx.get(fuzz_gateway.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = {"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model}", "/admin/keys"}
    assert paths <= set(doc["paths"])
    chat = doc["components"]["schemas"]["ChatRequest"]
    assert chat["required"] == ["model", "messages"]
    assert "gpt-4o-mini" in chat["properties"]["model"]["enum"]
    assert doc["components"]["schemas"]["KeyCreate"]["additionalProperties"] is False


OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("POST", "/admin/keys"),
    ("GET", "/admin/keys"),
    ("PATCH", "/admin/keys/{key_id}"),
    ("GET", "/admin/keys/{key_id}"),
]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_no_server_error(fuzz_gateway, fake, method, path, mode):
    schema = schemathesis.openapi.from_url(fuzz_gateway.url + "/openapi.json")
    operation = schema[path][method]
    answered: list[str] = []
    statuses: list[int] = []
    invalid_bodies: list[int] = []

    @hgiven(case=operation.as_strategy(schemathesis.GenerationMode(mode)))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same cases every run (CI must not flake on a random draw)
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call(headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
        statuses.append(response.status_code)
        body = case.meta.components.get(ParameterLocation.BODY) if case.meta else None
        if body is not None and body.mode == schemathesis.GenerationMode.NEGATIVE:
            invalid_bodies.append(response.status_code)
            if response.status_code < 400:
                print("ACCEPTED", repr(case.body)[:400])
        case.validate_response(
            response, checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
        )
        if response.status_code >= 400:
            assert set(response.json()["error"]) >= {"message", "type", "param", "code"}
        elif path == "/v1/chat/completions":
            answered.append(response.headers["x-thrifty-request-id"][0])

    run()
    print(method, path, mode, sorted(set(statuses)), len(statuses))
    if mode == "negative" and method in ("POST", "PATCH"):
        assert invalid_bodies and min(invalid_bodies) >= 400  # an invalid body is refused
    elif method == "POST" and path != "/admin/keys":
        assert 200 in statuses  # valid requests are answered
    if answered:  # nothing accepted is lost: every answer has its final ledger row
        deadline = time.monotonic() + 10
        while True:
            rows = ledger_rows(fuzz_gateway.ledger_path)
            final = {r["request_id"] for r in rows if r["final"] == 1}
            if set(answered) <= final or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert set(answered) <= final
