"""`thrifty batch submit|status|results|cancel`: provider batch jobs through a running gateway.

The commands speak the gateway's OpenAI `/v1/files` + `/v1/batches` endpoints over HTTP, exactly
as the OpenAI SDK does, so the job runs (and is booked) in the gateway.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

URL_HELP = "Gateway base URL (default $THRIFTY_URL or http://127.0.0.1:4000/v1)."
FINAL = ("completed", "failed", "expired", "cancelled")


def _client(url: str, api_key: str | None) -> Any:
    import httpx

    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60.0)


def _check(response: Any) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text[:300]
        click.echo(f"error: HTTP {response.status_code}: {message}", err=True)
        sys.exit(1)
    return response


def _options(fn: Any) -> Any:
    fn = click.option("--url", envvar="THRIFTY_URL", default="http://127.0.0.1:4000/v1", help=URL_HELP)(fn)
    return click.option("--api-key", envvar="THRIFTY_API_KEY", default=None, help="Virtual key.")(fn)


def _summary(batch: dict[str, Any]) -> str:
    counts = batch.get("request_counts") or {}
    line = (
        f"{batch['id']}  {batch['status']}  {counts.get('completed', 0)}/{counts.get('total', 0)} done"
        f", {counts.get('failed', 0)} failed"
    )
    if batch.get("output_file_id"):
        line += f"  output={batch['output_file_id']}"
    if batch.get("error_file_id"):
        line += f"  errors={batch['error_file_id']}"
    for error in (batch.get("errors") or {}).get("data") or []:
        line += f"\n  line {error.get('line')}: {error.get('code')}: {error.get('message')}"
    return line


@click.group("batch")
def batch_group() -> None:
    """Offline jobs at batch prices (OpenAI Batch API format: one request per JSONL line)."""


@batch_group.command("submit")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Poll until the batch is done, then print its status.")
@_options
def submit(path: Path, wait: bool, url: str, api_key: str | None) -> None:
    """Upload FILE.jsonl and start a batch; prints the batch id."""
    with _client(url, api_key) as http:
        files = {"file": (path.name, path.read_bytes(), "application/jsonl")}
        uploaded = _check(http.post("/files", data={"purpose": "batch"}, files=files)).json()
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        batch = _check(http.post("/batches", json=body)).json()
        while wait and batch["status"] not in FINAL:
            time.sleep(1.0)
            batch = _check(http.get(f"/batches/{batch['id']}")).json()
    click.echo(_summary(batch) if wait else batch["id"])
    if batch["status"] == "failed":
        sys.exit(1)


@batch_group.command("status")
@click.argument("batch_id")
@_options
def status(batch_id: str, url: str, api_key: str | None) -> None:
    """Show a batch's status and progress."""
    with _client(url, api_key) as http:
        click.echo(_summary(_check(http.get(f"/batches/{batch_id}")).json()))


@batch_group.command("results")
@click.argument("batch_id")
@click.option("--errors", is_flag=True, help="Print the error file instead of the output file.")
@_options
def results(batch_id: str, errors: bool, url: str, api_key: str | None) -> None:
    """Print a finished batch's output JSONL (one answer per line, with its custom_id)."""
    with _client(url, api_key) as http:
        batch = _check(http.get(f"/batches/{batch_id}")).json()
        file_id = batch.get("error_file_id" if errors else "output_file_id")
        if not file_id:
            click.echo(
                f"batch {batch_id} is {batch['status']} and has no {'error' if errors else 'output'} file",
                err=True,
            )
            sys.exit(1)
        click.echo(_check(http.get(f"/files/{file_id}/content")).text, nl=False)


@batch_group.command("cancel")
@click.argument("batch_id")
@_options
def cancel(batch_id: str, url: str, api_key: str | None) -> None:
    """Cancel a running batch."""
    with _client(url, api_key) as http:
        click.echo(_summary(_check(http.post(f"/batches/{batch_id}/cancel")).json()))
