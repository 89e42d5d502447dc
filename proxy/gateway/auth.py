"""The `/v1/` authentication middleware: refuse while draining, find the one presented key, check it
through the keystore, and leave the `ApiKey` on the request for the handlers.

Clients send their TokenHub key as `Authorization: Bearer th-…` (OpenAI SDK), `x-api-key` (Anthropic
SDK) or `api-key` (Azure style). Several copies of the same key are tolerated; two different values,
in any mix of these headers (duplicate `Authorization` headers included), are a 401: the proxy will not
guess which one the client meant. None of these headers is ever forwarded (see headers.py).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDictProxy

from keystore import ApiKey

from proxy.errors import PUBLIC_AUTH_MESSAGE, AuthenticationFailed, ServiceUnavailable
from proxy.log import KEY_ID
from proxy.state import CONFIG, KEYSTORE, LIFECYCLE, root

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_KEY = web.RequestKey("api_key", ApiKey)
_KEY_HEADERS = ("x-api-key", "api-key")
_MISSING = ("No API key provided. Send your TokenHub key as 'Authorization: Bearer th-…' "
            "(or in the x-api-key or api-key header).")


def presented_key(headers: CIMultiDictProxy[str]) -> str:
    """The one key the client presented; AuthenticationFailed when there is none or several differ."""
    found: set[str] = set()
    for value in headers.getall("Authorization", ()):
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed(PUBLIC_AUTH_MESSAGE)
        found.add(token.strip())
    for name in _KEY_HEADERS:
        for value in headers.getall(name, ()):
            found.add(value.strip())
    if len(found) == 1:
        return found.pop()
    if not found:
        raise AuthenticationFailed(_MISSING)
    raise AuthenticationFailed("More than one API key was sent; send exactly one.")


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)  # checked at config load


def _trusted(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str, headers: CIMultiDictProxy[str], trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy; then the nearest address
    in X-Forwarded-For that is not a trusted proxy (read right to left: only the hops we trust appended
    to it; anything further left was written by the client and is not believed)."""
    if not trusted_proxies:
        return peer
    networks = _networks(trusted_proxies)
    if not _trusted(peer, networks):
        return peer
    hops = [h.strip() for value in headers.getall("X-Forwarded-For", ()) for h in value.split(",")]
    found = peer
    for hop in reversed(hops):
        if not hop:
            continue
        found = hop
        if not _trusted(hop, networks):
            break
    return found


@web.middleware
async def auth_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = root(request)
    if config[LIFECYCLE].draining:
        raise ServiceUnavailable("This instance is shutting down; retry the request.",
                                 headers={"Retry-After": "1", "Connection": "close"})
    # The client's address scopes the failure limit: a flood of wrong secrets from one client gets
    # 429 without locking the key's rightful holder (another address) out.
    client = client_address(request.remote or "", request.headers, config[CONFIG].server.trusted_proxies)
    key = await config[KEYSTORE].authenticate(presented_key(request.headers), client=client)
    KEY_ID.set(key.id)
    request[API_KEY] = key
    return await handler(request)
