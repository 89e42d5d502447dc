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


def provider_problems(provider: ProviderConfig) -> list[str]:
    """Config check of a provider entry's style: a known `api`, that style's own rules, and `endpoints`
    it can serve. (ProviderConfig.problems() calls it, so a new style needs no change there.)"""
    style = STYLES.get(provider.api)
    if style is None:
        return [f"api must be one of {', '.join(STYLES)}, got {provider.api!r}"]
    return style.problems(provider) + [
        f"endpoints: {e!r} is not served by api = {provider.api!r} (one of: {', '.join(sorted(style.families))})"
        for e in provider.endpoints if e not in style.families]


__all__ = ["ENDPOINTS", "STYLES", "Endpoint", "ModelAt", "Owner", "Style", "provider_problems",
           "served_families", "style_of"]
