"""Model name → deployments (provider + upstream model), from config and the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.config import Config
from thrifty.errors import ModelNotFound
from thrifty.pricing.catalog import Catalog, Price
from thrifty.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: Provider
    model: str
    """Model name at the provider."""
    price: Price | None
    weight: float = 1.0
    priority: int = 0

    @property
    def key(self) -> str:
        return f"{self.provider.name}:{self.model}"


class ModelTable:
    """Resolves the model a client names to the deployments that can serve it."""

    def __init__(self, config: Config, providers: dict[str, Provider], catalog: Catalog) -> None:
        self._catalog = catalog
        self._deployments: dict[str, list[Deployment]] = {}
        self._fallbacks: dict[str, list[str]] = {}
        self._prices: dict[str, Price | None] = {}
        for pname, pconf in config.providers.items():
            if pconf.auto_models:
                for price in catalog.by_provider(pconf.family or pconf.type):
                    self._add(price.model, Deployment(providers[pname], price.model, price))
        for name, mconf in config.models.items():
            price = catalog.get(mconf.price or name)
            self._prices[name] = price
            if mconf.deployments:
                self._deployments[name] = [
                    Deployment(providers[d.provider], d.model or name, price, d.weight, d.priority)
                    for d in mconf.deployments
                ]
            self._fallbacks[name] = list(mconf.fallbacks)

    def _add(self, name: str, deployment: Deployment) -> None:
        self._deployments.setdefault(name, []).append(deployment)
        self._prices.setdefault(name, deployment.price)

    def deployments(self, model: str) -> list[Deployment]:
        found = self._deployments.get(model)
        if not found:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.", param="model"
            )
        return found

    def fallbacks(self, model: str) -> list[str]:
        return self._fallbacks.get(model, [])

    def price(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        return self._catalog.get(model)

    def names(self) -> list[str]:
        return sorted(self._deployments)

    def __contains__(self, model: str) -> bool:
        return bool(self._deployments.get(model))
