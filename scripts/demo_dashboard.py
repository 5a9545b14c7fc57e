"""Seed demo traffic through `thrifty serve` + the fake provider; write the dashboard screenshot and report.

    .venv/bin/python scripts/demo_dashboard.py   # writes docs/img/dashboard.png, docs/example-report.txt

Everything runs on loopback: the fake provider (thrifty.testing) answers, so the dollar figures are
what the bundled price catalog charges for the fake provider's token counts: an illustration of the
dashboard, not a measured saving. Needs Debian's chromium + chromium-driver and selenium.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import base_config  # noqa: E402
from tests.support.browser import chromium, wait_ready  # noqa: E402
from tests.support.servers import start_gateway  # noqa: E402

from thrifty.config import Config  # noqa: E402
from thrifty.testing.fake_provider import FakeProvider  # noqa: E402

MASTER = "sk-demo-master-key"
TOPICS = (
    "invoices",
    "release notes",
    "a SQL query",
    "a customer email",
    "the onboarding guide",
    "a bug report",
)
WORDS = [
    "the",
    "quarterly",
    "numbers",
    "show",
    "that",
    "support",
    "tickets",
    "about",
    "billing",
    "doubled",
    "while",
    "churn",
    "stayed",
    "flat",
]


def prompt(rng: random.Random, topic: str, words: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"Please help with {topic}. Context: {body}"


def demo_config(fake: FakeProvider, tmp: Path) -> dict[str, Any]:
    config = base_config(fake)
    config["baseline_model"] = "gpt-4o"
    config["server"] = {"master_key": MASTER}
    if "cache" in Config.model_fields:  # the exact cache, when this build has it
        config["cache"] = {"enabled": True, "path": str(tmp / "cache.db")}
    return config


def send_wave(client: httpx.Client, fake: FakeProvider, rng: random.Random, wave: int) -> None:
    """One burst: mostly the small model (routing saves vs the gpt-4o baseline), some gpt-4o and
    Claude, repeats (cache hits where the cache stage exists) and a flaky deployment that falls back."""
    for i in range(8 + wave % 4):
        model = rng.choices(["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5"], weights=[6, 2, 1])[0]
        topic = TOPICS[(wave + i) % len(TOPICS)] if rng.random() < 0.7 else rng.choice(TOPICS)
        text = prompt(random.Random(topic), topic, 120) if rng.random() < 0.35 else prompt(rng, topic, 200)
        body = {"model": model, "messages": [{"role": "user", "content": text}], "temperature": 0}
        client.post("/chat/completions", json=body)
    if wave % 3 == 2:
        fake.script({"status": 503}, {"status": 503}, {"status": 503})
        body = {"model": "flaky", "messages": [{"role": "user", "content": prompt(rng, "an outage", 80)}]}
        client.post("/chat/completions", json=body)


def run(out_png: Path, out_report: Path, waves: int, pause_s: float) -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="thrifty-demo-") as tmpdir, FakeProvider() as fake:
        tmp = Path(tmpdir)
        fake.set_default(latency_ms=25)
        gw = start_gateway(tmp, demo_config(fake, tmp))
        try:
            headers = {"authorization": f"Bearer {MASTER}"}
            with httpx.Client(base_url=gw.base_url, headers=headers, timeout=30) as client:
                for wave in range(waves):
                    send_wave(client, fake, rng, wave)
                    time.sleep(pause_s)
            report = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "thrifty.cli",
                    "report",
                    "--config",
                    str(gw.config_path),
                    "--by",
                    "model",
                ],
                capture_output=True,
                text=True,
                check=True,
                env={k: v for k, v in os.environ.items() if k != "THRIFTY_CONFIG"},
            ).stdout
            out_report.parent.mkdir(parents=True, exist_ok=True)
            out_report.write_text(report)
            with chromium(width=1440, height=1960) as driver:
                driver.get(f"{gw.url}/dashboard?key={MASTER}&since=all")
                wait_ready(driver)
                time.sleep(1.0)  # let the chart animations settle
                out_png.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out_png))
        finally:
            gw.stop()
    print(report)
    print(f"wrote {out_png} and {out_report}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "example-report.txt")
    parser.add_argument("--waves", type=int, default=12)
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between waves (spreads the series)")
    args = parser.parse_args()
    run(args.png, args.report, args.waves, args.pause)


if __name__ == "__main__":
    main()
