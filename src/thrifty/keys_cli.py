"""`thrifty keys create | list | show | update | revoke`: the admin API over HTTP.

The CLI talks to a running gateway (`--url`, env THRIFTY_URL) with the master key from the
environment (THRIFTY_MASTER_KEY), so every change goes through the one path that validates it and
invalidates the serving replica's key cache.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

import click

from thrifty.cli_types import FiniteFloatRange

LAST_EXPIRY = 253402300799.0
"""9999-12-31T23:59:59Z, = tenancy.spec.LAST_EXPIRY (not imported: it would load the config at CLI start)."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> float:
    match = _DURATION.match(value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration like 3600, 90m, 12h or 30d")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} is not a lifetime: it must be more than 0")
    if not math.isfinite(seconds) or time.time() + seconds > LAST_EXPIRY:
        raise click.BadParameter(f"{value!r} is too long: the key would expire after 9999-12-31")
    return seconds


def _expires_in(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """`--expires-in` checked while the options are parsed: a bad one is a usage error (exit 2)."""
    return None if value is None else _duration(value)


def _check_url(url: str) -> None:
    """An http(s) URL with a host (and a numeric port, if any); else a usage error naming --url."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise click.BadParameter(f"{url!r} is not a URL ({exc})", param_hint="'--url'") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not a gateway URL like http://127.0.0.1:4000", param_hint="'--url'"
        )


def _metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        out[name] = value
    return out


class AdminClient:
    def __init__(self, url: str, master_key: str | None) -> None:
        self.url = url.rstrip("/")
        self.master_key = master_key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self.master_key:
            raise click.UsageError("set THRIFTY_MASTER_KEY to the gateway's master key")
        _check_url(self.url)
        data = json.dumps(body).encode() if body is not None else None
        try:
            request = urllib.request.Request(self.url + path, data=data, method=method)
        except ValueError as exc:
            raise click.BadParameter(f"{self.url!r} is not a URL ({exc})", param_hint="'--url'") from None
        request.add_header("authorization", f"Bearer {self.master_key}")
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise click.ClickException(f"{exc.code}: {_error_message(exc.read())}") from None
        except urllib.error.URLError as exc:
            raise click.ClickException(f"cannot reach {self.url}: {exc.reason}") from None
        except http.client.InvalidURL as exc:
            raise click.BadParameter(f"{self.url!r} is not a URL ({exc})", param_hint="'--url'") from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets after connecting
            raise click.ClickException(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise click.ClickException(
                f"{self.url} did not answer with JSON: is it a thrifty gateway?"
            ) from None


def _error_message(raw: bytes) -> str:
    try:
        return json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:300]


USD = FiniteFloatRange(min=0)
PER_MINUTE = click.IntRange(min=1)


def _key_options(fn: Any) -> Any:
    options = [
        click.option("--name", default=None, help="A label for people."),
        click.option("--model", "models", multiple=True, help="Allowed model (repeat); default: all."),
        click.option("--daily-usd", type=USD, default=None, help="Budget per UTC day."),
        click.option("--monthly-usd", type=USD, default=None, help="Budget per UTC month."),
        click.option("--total-usd", type=USD, default=None, help="Budget over the key's life."),
        click.option("--rpm", type=PER_MINUTE, default=None, help="Requests per minute."),
        click.option(
            "--tpm", type=click.IntRange(min=1), default=None, help="Tokens (prompt + max output) per minute."
        ),
        click.option(
            "--expires-in", default=None, callback=_expires_in, help="Lifetime: seconds or 90m / 12h / 30d."
        ),
        click.option("--meta", multiple=True, help="Metadata KEY=VALUE (repeat)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _body(opts: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if opts.get("name") is not None:
        body["name"] = opts["name"]
    if opts.get("models"):
        body["models"] = list(opts["models"])
    budgets = {k: opts[k] for k in ("daily_usd", "monthly_usd", "total_usd") if opts.get(k) is not None}
    if budgets:
        body["budgets"] = budgets
    limits = {k: opts[k] for k in ("rpm", "tpm") if opts.get(k) is not None}
    if limits:
        body["rate_limits"] = limits
    if opts.get("expires_in") is not None:
        body["expires_in_s"] = opts["expires_in"]
    if opts.get("meta"):
        body["metadata"] = _metadata(opts["meta"])
    return body


def _show(key: dict[str, Any]) -> None:
    b, r = key["budgets"], key["rate_limits"]
    budgets = ", ".join(f"{k.split('_')[0]} ${v}" for k, v in b.items() if v is not None) or "none"
    limits = ", ".join(f"{k} {v}" for k, v in r.items() if v is not None) or "none"
    expires = _when(key["expires_at"])
    state = "REVOKED" if key["revoked"] else "active"
    models = ",".join(key["models"]) if key["models"] is not None else "all"
    click.echo(
        f"{key['id']}  {state:7}  tenant={key['tenant']}  hint={key['key_hint']}  models={models}  "
        f"budgets: {budgets}  limits: {limits}  expires: {expires}"
    )


def _when(stamp: Any) -> str:
    """A stored unix time as `YYYY-MM-DD HH:MM` (UTC); one no date can hold is shown as is, never raised."""
    if stamp is None:
        return "never"
    try:
        return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError, TypeError):
        return f"{stamp!r} (not a date)"


@click.group("keys")
@click.option("--url", envvar="THRIFTY_URL", default="http://127.0.0.1:4000", show_default=True)
@click.pass_context
def keys(ctx: click.Context, url: str) -> None:
    """Virtual keys, through the admin API of a running gateway (master key from THRIFTY_MASTER_KEY)."""
    import os

    ctx.obj = AdminClient(url, os.environ.get("THRIFTY_MASTER_KEY"))


@keys.command("create")
@click.option("--tenant", required=True, help="Team or customer the key belongs to.")
@_key_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def create(client: AdminClient, tenant: str, as_json: bool, **opts: Any) -> None:
    """Create a key; its secret is printed once and never again."""
    key = client.call("POST", "/admin/keys", {"tenant": tenant, **_body(opts)})
    if as_json:
        click.echo(json.dumps(key))
        return
    _show(key)
    click.echo(f"key (shown once, store it now): {key['key']}")


@keys.command("list")
@click.option("--tenant", default=None)
@click.option("--active", is_flag=True, help="Hide revoked keys.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_keys(client: AdminClient, tenant: str | None, active: bool, as_json: bool) -> None:
    """List keys (never their secrets)."""
    query = []
    if tenant:
        query.append("tenant=" + urllib.request.quote(tenant))
    if active:
        query.append("include_revoked=false")
    data = client.call("GET", "/admin/keys" + ("?" + "&".join(query) if query else ""))["data"]
    if as_json:
        click.echo(json.dumps(data))
        return
    for key in data:
        _show(key)


@keys.command("show")
@click.argument("key_id")
@click.pass_obj
def show(client: AdminClient, key_id: str) -> None:
    """One key with what its budgets have spent."""
    click.echo(json.dumps(client.call("GET", f"/admin/keys/{key_id}"), indent=2))


@keys.command("update")
@click.argument("key_id")
@click.option("--tenant", default=None)
@_key_options
@click.option("--all-models", is_flag=True, help="Allow every model again.")
@click.option("--no-expiry", is_flag=True, help="Remove the expiry.")
@click.pass_obj
def update(
    client: AdminClient, key_id: str, tenant: str | None, all_models: bool, no_expiry: bool, **opts: Any
) -> None:
    """Change a key's models, budgets, limits, expiry or metadata."""
    body = _body(opts)
    if tenant:
        body["tenant"] = tenant
    if all_models:
        body["models"] = None
    if no_expiry:
        body["expires_at"] = None
    if not body:
        raise click.UsageError("nothing to change")
    _show(client.call("PATCH", f"/admin/keys/{key_id}", body))


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def revoke(client: AdminClient, key_id: str) -> None:
    """Revoke a key: every replica refuses it within tenancy.keys.cache_ttl_s."""
    _show(client.call("DELETE", f"/admin/keys/{key_id}"))


if __name__ == "__main__":  # pragma: no cover
    keys(sys.argv[1:])
