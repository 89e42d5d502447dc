"""Provider API styles: one object per style behind one interface (base.py), the endpoint table
(endpoints.py), and the lookups the request path uses. The request path asks these; it never branches
on a style's name. Adding a style: one module implementing `Style`, one entry in `STYLES`, its tests."""

from __future__ import annotations

from proxy.config import ProviderConfig
from proxy.gateway.styles.anthropic import AnthropicStyle
from proxy.gateway.styles.azure import AzureStyle
from proxy.gateway.styles.base import Endpoint, ModelAt, Owner, Style
from proxy.gateway.styles.endpoints import ENDPOINTS
from proxy.gateway.styles.openai import OpenAIStyle

STYLES: dict[str, Style] = {s.name: s for s in (OpenAIStyle(), AnthropicStyle(), AzureStyle())}


def style_of(provider: ProviderConfig) -> Style:
    return STYLES[provider.api]


def served_families(provider: ProviderConfig) -> frozenset[str]:
    """The endpoint families this provider serves: its `endpoints`, or its style's defaults."""
    style = style_of(provider)
    return frozenset(provider.endpoints or style.defaults) & style.families


def endpoint_problems(api: str, endpoints: tuple[str, ...]) -> list[str]:
    """Config check for a provider's `endpoints` (an unknown style is reported by the config itself)."""
    style = STYLES.get(api)
    if style is None:
        return []
    return [f"endpoints: {e!r} is not served by api = {api!r} (one of: {', '.join(sorted(style.families))})"
            for e in endpoints if e not in style.families]


__all__ = ["ENDPOINTS", "STYLES", "Endpoint", "ModelAt", "Owner", "Style", "endpoint_problems",
           "served_families", "style_of"]
