from __future__ import annotations

import pytest

from thrifty.config import interpolate, load, parse
from thrifty.errors import ConfigError


def test_env_interpolation_with_defaults_and_missing():
    env = {"KEY": "secret"}
    assert interpolate({"a": "${KEY}", "b": ["x-${KEY}-y"], "c": "${NOPE:-dflt}", "d": 3}, env) == {
        "a": "secret",
        "b": ["x-secret-y"],
        "c": "dflt",
        "d": 3,
    }
    with pytest.raises(ConfigError) as exc:
        interpolate({"providers": {"p": {"api_key": "${MISSING}"}}}, env)
    assert exc.value.errors == [("providers.p.api_key", "environment variable MISSING is not set")]


def test_unknown_keys_and_bad_types_are_named():
    with pytest.raises(ConfigError) as exc:
        parse({"server": {"port": -1, "colour": 1}, "retry": {"max_retries": "many"}}, {})
    paths = [p for p, _ in exc.value.errors]
    assert {"server.port", "server.colour", "retry.max_retries"} <= set(paths)


def test_bad_references_are_named():
    with pytest.raises(ConfigError) as exc:
        parse(
            {
                "providers": {"a": {"type": "openai"}},
                "models": {"m": {"deployments": [{"provider": "b"}], "fallbacks": ["zzz"]}},
                "baseline_model": "no-such-model",
            },
            {},
        )
    assert set(exc.value.errors) == {
        ("models.m.deployments.0.provider", "unknown provider 'b'"),
        ("models.m.fallbacks.0", "unknown model 'zzz'"),
        ("baseline_model", "no price for model 'no-such-model'"),
    }


def test_env_providers_when_no_config():
    config = parse(
        {}, {"OPENAI_API_KEY": "k1", "ANTHROPIC_API_KEY": "k2", "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}
    )
    assert config.providers["openai"].api_key == "k1"
    assert config.providers["openai"].base_url == "https://api.openai.com/v1"
    assert config.providers["anthropic"].base_url == "http://127.0.0.1:1"
    names = config.model_names()
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"} <= names
    assert "gemini-2.5-pro" not in names


def test_explicit_providers_disable_env_defaults():
    config = parse(
        {"providers": {"mine": {"type": "openai", "base_url": "http://x"}}}, {"OPENAI_API_KEY": "k"}
    )
    assert list(config.providers) == ["mine"]


def test_load_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load(bad, {})
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(bad, {})


def test_price_overrides_extend_and_change_catalog():
    config = parse({"prices": {"gpt-4o": {"input": 1.0}, "my-model": {"input": 0.5, "output": 1.5}}}, {})
    catalog = config.catalog()
    assert catalog.get("gpt-4o").input == 1.0 and catalog.get("gpt-4o").output == 10.0
    assert catalog.get("my-model").output == 1.5


async def test_an_empty_master_key_is_no_key_not_a_lock():
    """`master_key: ${THRIFTY_MASTER_KEY:-}` (the documented form) with the variable unset: no auth and
    no tenancy, not a gateway that answers 401 to everyone."""
    from thrifty.tenancy.auth import Authenticator
    from thrifty.tenancy.runtime import enabled as tenancy_enabled

    config = parse({"server": {"master_key": "${THRIFTY_MASTER_KEY:-}"}}, {})
    assert config.server.master_key is None and not tenancy_enabled(config)
    tenant = await Authenticator(config.server.master_key, config.server.require_auth).authenticate(
        None, None
    )
    assert tenant.key_id is None
    keyed = parse({"server": {"master_key": "${THRIFTY_MASTER_KEY:-}"}}, {"THRIFTY_MASTER_KEY": "sk-admin"})
    assert keyed.server.master_key == "sk-admin" and tenancy_enabled(keyed)


def test_every_error_is_named_at_once_unset_variables_included():
    data = {
        "servr": {"port": 1},
        "providers": {"a": {"api_key": "${NOPE_A}"}, "b": {"api_key": "${NOPE_B}", "type": "opnai"}},
    }
    with pytest.raises(ConfigError) as exc:
        parse(data, {})
    paths = {p for p, _ in exc.value.errors}
    assert {"servr", "providers.a.api_key", "providers.b.api_key", "providers.b.type"} <= paths
    assert ("providers.a.api_key", "environment variable NOPE_A is not set") in exc.value.errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"server: {port: 4000}\nserver: {host: 0.0.0.0}\n", "duplicate key 'server'"),
        (b"ledger: {path: a.db, path: b.db}\n", "duplicate key 'path'"),
        (b"\xff\xfe garbage", "is not UTF-8 text"),
        (b"a: &a [*a]\n", "recursive YAML alias"),
    ],
)
def test_odd_files_are_config_errors_not_tracebacks(tmp_path, text, message):
    path = tmp_path / "thrifty.yaml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as exc:
        load(path, {})
    assert any(message in m for _, m in exc.value.errors), exc.value.errors


def test_ledger_settings_that_cannot_work_are_refused_when_loading():
    for ledger, where in (
        ({"backend": "postgres"}, "ledger.dsn"),
        ({"flush_interval_ms": 99_999_999_999_999}, "ledger.flush_interval_ms"),
    ):
        with pytest.raises(ConfigError) as exc:
            parse({"ledger": ledger}, {})
        assert [p for p, _ in exc.value.errors] == [where]
