"""The provider table: a requested model name → provider, the provider's own model name, its credential."""

from __future__ import annotations

from dataclasses import dataclass

from keystore import ApiKey

from proxy.config import ProviderConfig


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderConfig
    model: str  # the name the provider expects
    full: str  # "provider/model", what restrictions are written against


class ProviderTable:
    def __init__(self, providers: tuple[ProviderConfig, ...], aliases: dict[str, str]) -> None:
        self.providers = {p.name: p for p in providers}
        self._routes = {f"{p.name}/{m}": Route(p, m, f"{p.name}/{m}") for p in providers for m in p.models}
        self._names = dict(self._routes) | {alias: self._routes[t] for alias, t in aliases.items()}

    def resolve(self, requested: str) -> Route | None:
        """`provider/model` or a configured alias; None when no provider serves it."""
        return self._names.get(requested)

    def names(self) -> list[tuple[str, Route]]:
        """Every name a client may send: `provider/model` names first, then aliases."""
        return list(self._names.items())

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def allowed_routes(self, key: ApiKey) -> list[Route]:
        return [r for r in self._routes.values() if key.allows(r.provider.name, r.full)]

    def knows_model(self, full: str) -> bool:
        return full in self._routes

    def knows_provider(self, name: str) -> bool:
        return name in self.providers
