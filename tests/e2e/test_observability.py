"""`thrifty serve` + fake provider: /metrics series, the dashboard API and page, `thrifty report` agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import base_config, ledger_rows
from tests.support.browser import chromium, chromium_paths, wait_ready

pytestmark = pytest.mark.e2e
MASTER = "sk-master-observability-0123"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def send_traffic(gw, fake) -> int:
    """Routed (baseline gpt-4o), plain, fallback-after-errors and failed requests; returns requests sent."""
    headers = {"authorization": f"Bearer {MASTER}"}
    sent = 0
    with httpx.Client(base_url=gw.base_url, headers=headers, timeout=30) as client:
        for i in range(6):
            model = "gpt-4o-mini" if i % 3 else "gpt-4o"
            body = {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}
            assert client.post("/chat/completions", json=body).status_code == 200
            sent += 1
        fake.script({"status": 500}, {"status": 500}, {"status": 500})
        body = {"model": "flaky", "messages": [{"role": "user", "content": "falls back"}]}
        assert client.post("/chat/completions", json=body).status_code == 200
        sent += 1
        fake.script({"status": 400})
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "rejected upstream"}]}
        assert client.post("/chat/completions", json=body).status_code == 400
        sent += 1
    return sent


def metrics(gw) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {MASTER}"})
    assert resp.status_code == 200
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def report_json(gw) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "report", "--config", str(gw.config_path), "--format", "json"],
        capture_output=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "THRIFTY_CONFIG"},
    )
    return orjson.loads(out.stdout)


@pytest.fixture
def observed(gateway_factory, fake):
    config = base_config(fake)
    config["baseline_model"] = "gpt-4o"
    config["server"] = {"master_key": MASTER}
    gw = gateway_factory(config)
    sent = send_traffic(gw, fake)
    rows = ledger_rows(gw.ledger_path, expect=sent + 3)  # + three failed attempts before the fallback
    return gw, rows


def test_metrics_expose_requests_tokens_money_cache_latency_errors_breakers(observed):
    gw, rows = observed
    assert httpx.get(gw.url + "/metrics").status_code == 401
    m = metrics(gw)
    assert m[("thrifty_requests_total", (("model", "gpt-4o-mini"), ("status", "ok")))] == 4
    assert m[("thrifty_requests_total", (("model", "gpt-4o"), ("status", "ok")))] == 2
    assert (
        m[("thrifty_upstream_errors_total", (("deployment", "fakeai:flaky-up"), ("http_status", "500")))] == 3
    )
    input_tokens = sum(r["input_tokens"] for r in rows if r["served_model"] == "gpt-4o-mini")
    assert m[("thrifty_tokens_total", (("model", "gpt-4o-mini"), ("type", "input")))] == input_tokens
    cost = sum(v for (name, _), v in m.items() if name == "thrifty_cost_usd_total")
    assert cost == pytest.approx(sum(r["cost_usd"] for r in rows), rel=1e-9)
    saved = m[("thrifty_savings_usd_total", (("lever", "routing"),))]
    assert saved == pytest.approx(sum(r["saved_routing"] for r in rows if r["saved_routing"] > 0), rel=1e-9)
    assert m[("thrifty_cache_lookups_total", (("result", "bypass"),))] == 7  # no cache configured
    assert ("thrifty_cache_lookups_total", (("result", "miss"),)) not in m
    assert m[("thrifty_request_latency_seconds_count", (("model", "gpt-4o-mini"), ("status", "ok")))] == 4
    assert ("thrifty_breaker_state", (("deployment", "fakeai:flaky-up"),)) in m
    assert m[("thrifty_ledger_dropped_rows", ())] == 0


def test_dashboard_api_equals_thrifty_report(observed):
    gw, _ = observed
    assert httpx.get(gw.url + "/dashboard/api/summary").status_code == 401
    page = httpx.get(gw.url + "/dashboard")
    assert page.status_code == 401 and 'name="key"' in page.text
    with httpx.Client(base_url=gw.url, follow_redirects=True) as browser:
        assert browser.get("/dashboard", params={"key": "wrong"}).status_code == 401
        signed_in = browser.get("/dashboard", params={"key": MASTER})  # sets the cookie, drops the key
        assert signed_in.status_code == 200 and "thrifty" in signed_in.text
        assert MASTER not in str(browser.cookies.get("thrifty_dashboard"))
        data = browser.get("/dashboard/api/summary", params={"since": "all"}).json()
        assert browser.get("/dashboard/api/summary", params={"since": "yesterday"}).status_code == 400
        reversed_window = browser.get("/dashboard/api/summary", params={"since": "1d", "until": "7d"})
        assert reversed_window.status_code == 400 and reversed_window.json()["error"]["param"] == "until"
    expected = report_json(gw)
    assert data["report"]["totals"] == expected["totals"]
    assert data["report"]["waterfall"] == expected["waterfall"]
    assert data["latency"]["count"] == expected["totals"]["answered"]
    assert len(data["recent_errors"]) == 4
    assert sum(p["actual_usd"] for p in data["series"]) == pytest.approx(expected["totals"]["actual_usd"])


@pytest.mark.skipif(
    chromium_paths() is None and os.environ.get("CI") != "true",
    reason="chromium/chromium-driver not installed",
)
def test_dashboard_renders_the_report_totals_in_chromium(observed):
    gw, _ = observed
    expected = report_json(gw)["totals"]
    with chromium() as driver:
        driver.get(f"{gw.url}/dashboard?key={MASTER}&since=all")
        wait_ready(driver)
        assert "key=" not in driver.current_url

        def kpi(name: str) -> float:
            return float(driver.find_element("id", f"kpi-{name}").get_attribute("data-value"))

        assert kpi("baseline") == pytest.approx(expected["baseline_usd"], rel=1e-12)
        assert kpi("actual") == pytest.approx(expected["actual_usd"], rel=1e-12)
        assert kpi("saved") == pytest.approx(expected["net_saved_usd"], rel=1e-12)
        assert kpi("requests") == expected["requests"]
        # the charts hold the same numbers: waterfall ends at the actual spend, the series sums to it
        last_bar = driver.execute_script(
            "const c = window.thriftyDashboard.charts['chart-waterfall'];"
            "const d = c.data.datasets[0].data; return d[d.length - 1][1];"
        )
        assert last_bar == pytest.approx(expected["actual_usd"], rel=1e-12)
        series_total = driver.execute_script(
            "const c = window.thriftyDashboard.charts['chart-series'];"
            "return c.data.datasets[0].data.reduce((a, b) => a + b, 0);"
        )
        assert series_total == pytest.approx(expected["actual_usd"], rel=1e-9)
        models = driver.execute_script("return window.thriftyDashboard.charts['chart-models'].data.labels;")
        assert {"gpt-4o", "gpt-4o-mini"} <= set(models)
        rendered = driver.find_element("id", "waterfall-table").text
        assert "actual spend" in rendered and "routing" in rendered
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
