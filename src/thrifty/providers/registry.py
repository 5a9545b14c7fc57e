"""Builds Provider objects from config: the one place provider types map to classes."""

from __future__ import annotations

from thrifty.config import ProviderConfig
from thrifty.providers.base import Provider
from thrifty.providers.http import HttpClient


def provider_classes() -> dict[str, type[Provider]]:
    from thrifty.providers.anthropic import AnthropicProvider
    from thrifty.providers.local import LocalProvider
    from thrifty.providers.openai_compat import OpenAICompatProvider

    return {"openai": OpenAICompatProvider, "anthropic": AnthropicProvider, "local": LocalProvider}


def build_providers(configs: dict[str, ProviderConfig], http: HttpClient) -> dict[str, Provider]:
    classes = provider_classes()
    return {name: classes[conf.type](name, conf, http) for name, conf in configs.items()}
