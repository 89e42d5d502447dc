"""The endpoint table: every path a client may call on the proxy's API listeners, and nothing else
(README "Endpoint policy"; any other path under /v1/ is a 404 before anything leaves the proxy).

A provider serves an endpoint when its style can and its `endpoints` list names the family (empty
list: the style's inference endpoints). Model-bearing body fields other than `model` cannot be checked
against a key's restrictions (a fallback list, a tool's own model, a stored conversation), so they
are refused (`refused`) rather than passed on. On /v1/responses that includes stored objects of the
operator's account no key owns: a `conversation`, a `prompt` template (which carries its own model) and
input items that reference stored items by id (`item_reference`).
"""

from __future__ import annotations

from proxy.gateway.styles.anthropic import ANTHROPIC_ERRORS
from proxy.gateway.styles.base import Endpoint, ModelAt, Owner
from proxy.gateway.styles.usage import ANTHROPIC_USAGE, RESPONSES_USAGE
from proxy.metering.parsers import OPENAI

_FALLBACKS = ("models", "fallbacks")  # LiteLLM/OpenRouter-style model fallback lists
_CHAT_CAPS = ("max_tokens", "max_completion_tokens")


def _openai(family: str, **kw: object) -> Endpoint:
    return Endpoint("POST", f"/v1/{family}", family, f"/{family}", refused=_FALLBACKS, **kw)  # type: ignore[arg-type]


def _azure(family: str, **kw: object) -> Endpoint:
    return Endpoint("POST", f"/openai/deployments/{{deployment}}/{family}", family, f"/{family}",
                    model_at=ModelAt.DEPLOYMENT, refused=_FALLBACKS, **kw)  # type: ignore[arg-type]


def _stored(method: str, suffix: str = "", *, query: bool = False) -> Endpoint:
    return Endpoint(method, f"/v1/responses/{{id}}{suffix}", "responses", f"/responses/{{id}}{suffix}",
                    model_at=ModelAt.OWNER, query=query, owner=Owner.REQUIRED)


ENDPOINTS: tuple[Endpoint, ...] = (
    _openai("chat/completions", usage=OPENAI, ask_usage=True, max_tokens=_CHAT_CAPS),
    _openai("completions", usage=OPENAI, ask_usage=True, max_tokens=("max_tokens",)),
    _openai("embeddings", usage=OPENAI),
    Endpoint("POST", "/v1/responses", "responses", "/responses", usage=RESPONSES_USAGE,
             max_tokens=("max_output_tokens",), owner=Owner.CREATES,
             refused=(*_FALLBACKS, "conversation", "prompt", "tools[].model", "input[].type=item_reference")),
    _stored("GET", query=True),  # include[], stream and starting_after (background responses)
    _stored("DELETE"),
    _stored("POST", "/cancel"),
    _stored("GET", "/input_items", query=True),  # after, limit, order, include[]
    _openai("moderations", usage=OPENAI),
    _openai("images/generations"),
    _openai("audio/speech"),
    _openai("rerank"),
    Endpoint("POST", "/v1/messages", "messages", "/messages", usage=ANTHROPIC_USAGE, max_tokens=("max_tokens",),
             refused=_FALLBACKS, errors=ANTHROPIC_ERRORS),
    Endpoint("POST", "/v1/messages/count_tokens", "messages/count_tokens", "/messages/count_tokens",
             refused=_FALLBACKS, errors=ANTHROPIC_ERRORS),
    _azure("chat/completions", usage=OPENAI, ask_usage=True, max_tokens=_CHAT_CAPS),
    _azure("completions", usage=OPENAI, ask_usage=True, max_tokens=("max_tokens",)),
    _azure("embeddings", usage=OPENAI),
)
