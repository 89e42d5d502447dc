"""The `/v1/` authentication middleware: refuse while draining, find the one presented key, check it
through the keystore, and leave the `ApiKey` on the request for the handlers.

Clients send their TokenHub key as `Authorization: Bearer th-…` (OpenAI SDK), `x-api-key` (Anthropic
SDK) or `api-key` (Azure style). Several copies of the same key are tolerated; two different values,
in any mix of these headers (duplicate `Authorization` headers included), are a 401: the proxy will not
guess which one the client meant. None of these headers is ever forwarded (see headers.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDictProxy

from keystore import ApiKey

from proxy.errors import PUBLIC_AUTH_MESSAGE, AuthenticationFailed, ServiceUnavailable
from proxy.log import KEY_ID
from proxy.state import KEYSTORE, LIFECYCLE

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


@web.middleware
async def auth_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.config_dict
    if config[LIFECYCLE].draining:
        raise ServiceUnavailable("This instance is shutting down; retry the request.",
                                 headers={"Retry-After": "1", "Connection": "close"})
    # The client's address scopes the failure limit: a flood of wrong secrets from one client gets
    # 429 without locking the key's rightful holder (another address) out.
    key = await config[KEYSTORE].authenticate(presented_key(request.headers), client=request.remote or "")
    KEY_ID.set(key.id)
    request[API_KEY] = key
    return await handler(request)
