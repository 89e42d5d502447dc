"""The provider API style seam: what an inbound endpoint is (`Endpoint`) and what a style must say
(`Style`): how the provider's credential is sent, which endpoints it can serve, how its URL is built
and what model name it expects. The request path (forward.py) asks these; it never names a style.

An endpoint is one row of the README's endpoint table: the method and path a client calls, the
operation family an operator lists in a provider's `endpoints`, where the model is, whether the client's
query string goes upstream, how usage is read from the answer, and where the output-token cap lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from multidict import CIMultiDictProxy

from proxy.config import ProviderConfig
from proxy.errors import OPENAI_ERRORS, ErrorShape
from proxy.metering.parsers import UsageFormat


class ModelAt(StrEnum):
    """Where the model that decides the route is written."""

    BODY = "body"  # the JSON body's "model"
    DEPLOYMENT = "deployment"  # the path's {deployment} (the AzureOpenAI client's own paths)
    OWNER = "owner"  # nowhere: the stored object's record (who created it, on which model) decides


class Owner(StrEnum):
    """How an endpoint relates to objects the provider stores for us (Responses)."""

    NONE = "none"
    CREATES = "creates"  # the answer carries a new object id: remember which key created it
    REQUIRED = "required"  # the path names an object id: only its creator may reach it


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # as the client calls it (an aiohttp route pattern)
    family: str  # what a provider's `endpoints` lists to serve it, e.g. "chat/completions", "responses"
    upstream: str  # the operation's path at the provider, relative to the style's API root
    model_at: ModelAt = ModelAt.BODY
    query: bool = False  # the client's query string goes upstream
    usage: UsageFormat | None = None  # how the answer's usage is read (None: nothing to meter)
    ask_usage: bool = False  # streamed usage must be asked for (`stream_options.include_usage`)
    max_tokens: tuple[str, ...] = ()  # body fields capping output tokens (limits reserve from them)
    refused: tuple[str, ...] = ()  # body fields naming models or objects no check can vouch for: 400
    owner: Owner = Owner.NONE
    errors: ErrorShape = OPENAI_ERRORS  # the shape of errors we create here (the inbound API's own)

    @property
    def row(self) -> str:
        return f"{self.method} {self.path}"


class Style(Protocol):
    """One provider API style. Adding a style is one more implementation of this, registered in
    `styles/__init__.py`; nothing in the request path changes."""

    @property
    def name(self) -> str:
        """What `[[providers]] api` says."""
        ...

    @property
    def families(self) -> frozenset[str]:
        """The endpoint families this style can serve."""
        ...

    @property
    def defaults(self) -> tuple[str, ...]:
        """The families served when the provider's `endpoints` is empty."""
        ...

    def problems(self, provider: ProviderConfig) -> list[str]:
        """Config rules of this style for a provider entry (checked at start with every other problem)."""
        ...

    def upstream_model(self, provider: ProviderConfig, model: str) -> str:
        """The model name the provider expects for `model` (one of the provider's `models`)."""
        ...

    def deployment(self, provider: ProviderConfig, model: str) -> str | None:
        """The name `model` is deployed under, for styles that address models by deployment (Azure):
        clients using that style's own paths may name it. None for other styles."""
        ...

    def url(self, provider: ProviderConfig, endpoint: Endpoint, model: str, params: dict[str, str],
            query: str) -> str:
        """The provider URL for `endpoint` (`model` already the provider's name, `params` the path's
        validated parameters, `query` the client's raw query string when the endpoint passes it)."""
        ...

    def headers(self, provider: ProviderConfig, incoming: CIMultiDictProxy[str]) -> dict[str, str | None]:
        """Headers to set on the outbound request (None: remove): the credential and whatever this
        API needs (e.g. anthropic-version), computed from the config and the client's headers."""
        ...


class ModelsByName:
    """What a style that calls a model by its own name says (every style but Azure's deployments)."""

    __slots__ = ()

    def upstream_model(self, provider: ProviderConfig, model: str) -> str:
        return model

    def deployment(self, provider: ProviderConfig, model: str) -> str | None:
        return None

    @staticmethod
    def deployment_problems(provider: ProviderConfig) -> list[str]:
        return ["deployments: only api = \"azure\" addresses models by deployment"] if provider.deployments else []
