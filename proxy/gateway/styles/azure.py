"""The Azure OpenAI style: the credential as `api-key`, every URL carries the configured
`api-version`, and the model is addressed by its deployment:
`{base_url}/openai/deployments/{deployment}/{operation}?api-version=…` (chat, completions, embeddings,
images, speech), or `{base_url}/openai/responses…?api-version=…` with the deployment as the body's model
(the Responses API has no deployment path). `deployments` maps a model name to its deployment; a model
without an entry is deployed under its own name."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from multidict import CIMultiDictProxy

from proxy.config import ProviderConfig
from proxy.gateway.styles.base import Endpoint
from proxy.gateway.styles.openai import INFERENCE, fill

_BY_DEPLOYMENT = frozenset({"chat/completions", "completions", "embeddings", "images/generations", "audio/speech"})


def _without_api_version(query: str) -> str:
    # The api-version is the operator's choice (config), never the client's.
    return "&".join(p for p in query.split("&") if p and not p.lower().startswith("api-version="))


@dataclass(frozen=True, slots=True)
class AzureStyle:
    name: str = "azure"
    families: frozenset[str] = frozenset(INFERENCE) | _BY_DEPLOYMENT
    defaults: tuple[str, ...] = INFERENCE

    def problems(self, provider: ProviderConfig) -> list[str]:
        return [] if provider.api_version else ["api_version is required for api = \"azure\""]

    def upstream_model(self, provider: ProviderConfig, model: str) -> str:
        return provider.deployments.get(model, model)

    def deployment(self, provider: ProviderConfig, model: str) -> str | None:
        return provider.deployments.get(model, model)

    def url(self, provider: ProviderConfig, endpoint: Endpoint, model: str, params: dict[str, str],
            query: str) -> str:
        path = fill(endpoint.upstream, params)
        if endpoint.family in _BY_DEPLOYMENT:
            path = f"/deployments/{quote(model, safe='')}{path}"
        extra = _without_api_version(query)
        version = f"api-version={quote(provider.api_version, safe='')}"
        return f"{provider.base_url}/openai{path}?{version}" + (f"&{extra}" if extra else "")

    def headers(self, provider: ProviderConfig, incoming: CIMultiDictProxy[str]) -> dict[str, str | None]:
        return {"api-key": provider.api_key or None, "Authorization": None}
