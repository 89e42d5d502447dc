"""Header filtering in both directions: hop-by-hop headers (and any named in `Connection`) never cross
the proxy, the client's key never leaves it, and the provider's credential is the only one sent on."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.errors import InvalidRequest

# RFC 9110 §7.6.1 hop-by-hop headers, plus the framing headers aiohttp recomputes for the new message.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "content-length",
})
# Client → provider: also the client's credentials (all three spellings), our own host, Expect (the
# body is already read), the client's request id (we send ours) and Content-Encoding (such bodies are
# refused before we get here).
_DROP_OUTBOUND = HOP_BY_HOP | frozenset({
    "authorization", "x-api-key", "api-key", "host", "expect", "x-request-id", "content-encoding", "cookie",
})
# Provider → client: the provider's own request id would be overwritten by ours anyway.
_DROP_INBOUND = HOP_BY_HOP | frozenset({"x-request-id", "set-cookie"})
_BAD_CHARS = frozenset("\r\n\x00")


def _named_in_connection(headers: Mapping[str, str]) -> frozenset[str]:
    value = headers.get("Connection")
    if not value:
        return frozenset()
    return frozenset(token.strip().lower() for token in value.split(","))


def _check_value(name: str, value: str) -> None:
    # aiohttp's client raises ValueError on these; a client-supplied value must be a 400, not a 500.
    if not _BAD_CHARS.isdisjoint(value):
        raise InvalidRequest(f"Header {name!r} contains a forbidden control character.", param=name)


def outbound_headers(incoming: CIMultiDictProxy[str], credential: str, request_id: str) -> CIMultiDict[str]:
    """What the provider receives: the client's end-to-end headers, our request id, its credential."""
    named = _named_in_connection(incoming)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lowered = name.lower()
        if lowered in _DROP_OUTBOUND or lowered in named:
            continue
        _check_value(name, value)
        out.add(name, value)
    out["Content-Type"] = "application/json"
    out["X-Request-ID"] = request_id
    if credential:
        out["Authorization"] = f"Bearer {credential}"
    return out


def inbound_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """What the client receives from the provider's response headers."""
    named = _named_in_connection(upstream)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lowered = name.lower()
        if lowered not in _DROP_INBOUND and lowered not in named:
            out.add(name, value)
    return out
