"""The provider table: a requested model name → provider, the provider's own model name, its style and
the endpoint families it serves."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config import ProviderConfig
from proxy.gateway.styles import Endpoint, Style, served_families, style_of


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderConfig
    model: str  # the provider's model name as configured (the style may map it further: Azure deployments)
    full: str  # "provider/model", what restrictions are written against

    @property
    def style(self) -> Style:
        return style_of(self.provider)


class ProviderTable:
    def __init__(self, providers: tuple[ProviderConfig, ...], aliases: dict[str, str]) -> None:
        self.providers = {p.name: p for p in providers}
        self._routes = {f"{p.name}/{m}": Route(p, m, f"{p.name}/{m}") for p in providers for m in p.models}
        self._names = dict(self._routes) | {alias: self._routes[t] for alias, t in aliases.items()}
        self._served = {p.name: served_families(p) for p in providers}
        self._deployments = _deployment_names(providers, self._routes)

    def resolve(self, requested: str) -> Route | None:
        """`provider/model` or a configured alias; None when no provider serves it."""
        return self._names.get(requested)

    def resolve_deployment(self, deployment: str) -> Route | None:
        """An Azure-style path's deployment: a model name as `resolve` takes it, or the deployment name
        of exactly one configured Azure model."""
        return self._names.get(deployment) or self._deployments.get(deployment)

    def serves(self, route: Route, endpoint: Endpoint) -> bool:
        return endpoint.family in self._served[route.provider.name]

    def names(self) -> list[tuple[str, Route]]:
        """Every name a client may send: `provider/model` names first, then aliases."""
        return list(self._names.items())

    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def knows_model(self, full: str) -> bool:
        return full in self._routes

    def knows_provider(self, name: str) -> bool:
        return name in self.providers


def _deployment_names(providers: tuple[ProviderConfig, ...], routes: dict[str, Route]) -> dict[str, Route]:
    """Deployment name → route, for names that mean one model only (an ambiguous name is not served:
    the client must then say `provider/model`)."""
    seen: dict[str, list[Route]] = {}
    for p in providers:
        for model in p.models:
            name = style_of(p).deployment(p, model)
            if name is not None:
                seen.setdefault(name, []).append(routes[f"{p.name}/{model}"])
    return {name: found[0] for name, found in seen.items() if len(found) == 1}
