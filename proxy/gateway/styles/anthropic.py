"""The Anthropic Messages style: the credential as `x-api-key`, `anthropic-version` from the config
(the client's own value when it names a dated version), `anthropic-beta` only for the betas on the
allow-list, `base_url` without `/v1` (as the Anthropic SDK takes it). Errors we create on its
endpoints use Anthropic's shape, so the Anthropic SDK raises the matching class."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import orjson
from multidict import CIMultiDictProxy

from proxy.config import ProviderConfig
from proxy.errors import ErrorShape, ProxyError
from proxy.gateway.styles.base import Endpoint, ModelsByName
from proxy.gateway.styles.openai import fill

_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
# Betas that change how the model answers the request at hand. Not on the list: betas that reach
# objects stored in the operator's account (files, skills, MCP connectors, agent containers), which
# one tenant would otherwise share with every other. Operators add more with `anthropic_betas`.
DEFAULT_BETAS = frozenset({
    "prompt-caching-2024-07-31", "token-efficient-tools-2025-02-19", "output-128k-2025-02-19",
    "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14", "extended-cache-ttl-2025-04-11",
    "context-1m-2025-08-07", "context-management-2025-06-27", "computer-use-2025-01-24", "claude-code-20250219",
    "pdfs-2024-09-25", "message-batches-2024-09-24", "structured-outputs-2025-11-13", "effort-2025-11-24",
})
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
          404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 415: "invalid_request_error",
          429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}


class AnthropicErrors(ErrorShape):
    """`{"type": "error", "error": {"type", "message"}}`: what the Anthropic SDK parses."""

    def body(self, exc: ProxyError) -> dict[str, Any]:
        kind = _TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": exc.message}}

    def stream_event(self, exc: ProxyError) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(self.body(exc)) + b"\n\n"


ANTHROPIC_ERRORS = AnthropicErrors()


@functools.cache
def _allowed(extra: tuple[str, ...]) -> frozenset[str]:
    return DEFAULT_BETAS | frozenset(extra)


def allowed_betas(provider: ProviderConfig, incoming: CIMultiDictProxy[str]) -> str | None:
    values = incoming.getall("anthropic-beta", ())
    if not values:
        return None
    allowed = _allowed(provider.anthropic_betas)
    asked = (b.strip() for value in values for b in value.split(","))
    kept = list(dict.fromkeys(b for b in asked if b in allowed))
    return ",".join(kept) or None


@dataclass(frozen=True, slots=True)
class AnthropicStyle(ModelsByName):
    name: str = "anthropic"
    families: frozenset[str] = frozenset({"messages", "messages/count_tokens"})
    defaults: tuple[str, ...] = ("messages", "messages/count_tokens")

    def problems(self, provider: ProviderConfig) -> list[str]:
        out = [] if _VERSION.fullmatch(provider.anthropic_version) else [
            f"anthropic_version must be a dated version (YYYY-MM-DD), got {provider.anthropic_version!r}"]
        return out + self.deployment_problems(provider)

    def url(self, provider: ProviderConfig, endpoint: Endpoint, model: str, params: dict[str, str],
            query: str) -> str:
        root = provider.base_url if provider.base_url.endswith("/v1") else provider.base_url + "/v1"
        url = root + fill(endpoint.upstream, params)
        return f"{url}?{query}" if query else url

    def headers(self, provider: ProviderConfig, incoming: CIMultiDictProxy[str]) -> dict[str, str | None]:
        asked = incoming.get("anthropic-version", "").strip()
        return {
            "x-api-key": provider.api_key or None,
            "Authorization": None,
            "anthropic-version": asked if _VERSION.fullmatch(asked) else provider.anthropic_version,
            "anthropic-beta": allowed_betas(provider, incoming),
        }
