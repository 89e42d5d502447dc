"""Header filtering in both directions, by allow-list: only the headers named here cross the proxy.

Client → provider: what the provider needs to answer the request as the client asked, and nothing
that authenticates, selects the operator's account (`OpenAI-Organization`, `OpenAI-Project`), changes
how the provider routes the request (`X-HTTP-Method-Override`, `X-Original-URL`), or is scoped to the
operator's whole account (`Idempotency-Key`: two tenants' keys would collide). The provider's
credential and our request id are added by us.

Provider → client: what describes the answer, and nothing about the operator's account (its
organisation, project, spend, cost or account rate limits: `x-ratelimit-*` from the provider describe
the operator's account, not the client's key). The provider's own request id is kept, renamed
`x-upstream-request-id` (our `x-request-id` is the client's), so a provider ticket can be traced.
"""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.errors import InvalidRequest

# Client → provider (the README's "Headers sent to the provider" table is this set).
FORWARDED_REQUEST_HEADERS = frozenset({
    "accept", "accept-encoding", "user-agent", "openai-beta", "anthropic-beta", "anthropic-version",
    "traceparent", "tracestate",
})
# Provider → client (the README's "Headers returned to the client" table is this set).
RETURNED_RESPONSE_HEADERS = frozenset({
    "content-type", "content-encoding", "cache-control", "retry-after", "retry-after-ms",
    "openai-processing-ms", "openai-version",
})
UPSTREAM_ID_HEADER = "x-upstream-request-id"
# Where providers put their own request id: OpenAI and vLLM, Anthropic, Azure.
_PROVIDER_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id")
_BAD_CHARS = frozenset("\r\n\x00")
_MAX_ID = 200


def _check_value(name: str, value: str) -> None:
    # aiohttp's client raises ValueError on these; a client-supplied value must be a 400, not a 500.
    if not _BAD_CHARS.isdisjoint(value):
        raise InvalidRequest(f"Header {name!r} contains a forbidden control character.", param=name)


def outbound_headers(incoming: CIMultiDictProxy[str], credential: str, request_id: str) -> CIMultiDict[str]:
    """What the provider receives: the allowed client headers, our request id, its credential."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        if name.lower() in FORWARDED_REQUEST_HEADERS:
            _check_value(name, value)
            out.add(name, value)
    out["Content-Type"] = "application/json"
    out["X-Request-ID"] = request_id
    if credential:
        out["Authorization"] = f"Bearer {credential}"
    return out


def upstream_request_id(upstream: CIMultiDictProxy[str]) -> str:
    """The provider's own id for this request ('' when it sent none), bounded and printable."""
    for name in _PROVIDER_ID_HEADERS:
        value = upstream.get(name)
        if value:
            return value[:_MAX_ID] if value.isprintable() else ""
    return ""


def inbound_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """What the client receives from the provider's response headers."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        if name.lower() in RETURNED_RESPONSE_HEADERS:
            out.add(name, value)
    found = upstream_request_id(upstream)
    if found:
        out[UPSTREAM_ID_HEADER] = found
    return out
