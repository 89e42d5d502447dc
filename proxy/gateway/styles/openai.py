"""The OpenAI API style (also vLLM, TGI, Ollama and other OpenAI-compatible servers): the credential
as `Authorization: Bearer`, `base_url` ending in `/v1`, the operation's path appended."""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDictProxy

from proxy.config import ProviderConfig
from proxy.gateway.styles.base import Endpoint, ModelsByName

# Inference endpoints, served unless a provider lists its own; the others only when listed.
INFERENCE = ("chat/completions", "completions", "embeddings", "responses")
OPTIONAL = ("moderations", "images/generations", "audio/speech", "rerank")


def fill(template: str, params: dict[str, str]) -> str:
    """The path template with its parameters (already checked to be plain id characters)."""
    return template.format_map(params) if params else template


@dataclass(frozen=True, slots=True)
class OpenAIStyle(ModelsByName):
    name: str = "openai"
    families: frozenset[str] = frozenset(INFERENCE + OPTIONAL)
    defaults: tuple[str, ...] = INFERENCE

    def problems(self, provider: ProviderConfig) -> list[str]:
        return self.deployment_problems(provider)

    def url(self, provider: ProviderConfig, endpoint: Endpoint, model: str, params: dict[str, str],
            query: str) -> str:
        url = provider.base_url + fill(endpoint.upstream, params)
        return f"{url}?{query}" if query else url

    def headers(self, provider: ProviderConfig, incoming: CIMultiDictProxy[str]) -> dict[str, str | None]:
        return {"Authorization": f"Bearer {provider.api_key}" if provider.api_key else None}
