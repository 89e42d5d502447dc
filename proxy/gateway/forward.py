"""The `/v1/` sub-application: authenticate (auth.py), check the model, forward to the provider, stream
the answer back (relay.py).

Every JSON POST under `/v1/` that carries a `model` goes through the same path: the body is read under
a byte limit, parsed once, the model resolved (`provider/model` or an alias) and checked against the
key's restrictions before anything leaves the proxy, then the *parsed* object is re-serialised with the
provider's own model name and sent to the provider's `base_url` + the path after `/v1`.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from keystore import ApiKey

from proxy.errors import Forbidden, NotFound
from proxy.gateway.auth import API_KEY, auth_mw
from proxy.gateway.body import parse_json, read_body
from proxy.gateway.headers import outbound_headers
from proxy.gateway.providers import ProviderTable, Route
from proxy.gateway.relay import relay
from proxy.log import REQUEST_ID_KEY
from proxy.state import CONFIG, PROVIDERS, UPSTREAM_HTTP

# The path after /v1 that may be forwarded: plain segments only, so nothing can walk out of the
# provider's base_url ("..", encoded slashes or dots) or smuggle bytes into the request line.
_FORWARDABLE_PATH = re.compile(r"(?:/(?!\.{1,2}(?:/|$))[A-Za-z0-9_.~-]+)+")
_MAX_ECHO = 200  # longest model name we repeat back in an error message


def make_subapp() -> web.Application:
    app = web.Application(middlewares=[auth_mw])
    app.add_routes([
        web.get("/models", list_models),
        web.get("/models/{model:.+}", get_model),
        web.post("/chat/completions", forward_json),
        web.post("/completions", forward_json),
        web.post("/embeddings", forward_json),
        web.post("/{path:.+}", forward_json),  # any other JSON endpoint that carries a model
    ])
    return app


def resolve_for_key(providers: ProviderTable, key: ApiKey, requested: str) -> Route:
    """The route serving `requested`; 404 when no provider serves it, 403 when the key may not use it
    (without saying what it may use)."""
    route = providers.resolve(requested)
    if route is None:
        raise NotFound(f"The model '{requested[:_MAX_ECHO]}' does not exist or is not served here.",
                       param="model", code="model_not_found")
    if not key.allows(route.provider.name, route.full):
        raise Forbidden("This API key is not allowed to use this model.", param="model")
    return route


def _upstream_path(request: web.Request) -> str:
    path = request.rel_url.raw_path[3:]  # the sub-app is mounted at /v1
    if not _FORWARDABLE_PATH.fullmatch(path):
        raise NotFound("Unknown path.", code=None)
    query = request.rel_url.raw_query_string
    return f"{path}?{query}" if query else path


async def forward_json(request: web.Request) -> web.StreamResponse:
    config_dict = request.config_dict
    config = config_dict[CONFIG]
    path = _upstream_path(request)
    raw = await read_body(request, config.server.max_body_bytes, config.server.body_timeout_seconds)
    body = parse_json(raw)
    route = resolve_for_key(config_dict[PROVIDERS], request[API_KEY], body["model"])
    body["model"] = route.model
    provider = route.provider
    headers = outbound_headers(request.headers, provider.api_key, request[REQUEST_ID_KEY])
    return await relay(request, config_dict[UPSTREAM_HTTP], provider.base_url + path, orjson.dumps(body),
                       headers, config.upstream, provider.name)


def _model_object(name: str, route: Route) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": route.provider.name}


async def list_models(request: web.Request) -> web.Response:
    """What this key may call: `provider/model` names first, then the aliases that lead to them."""
    key = request[API_KEY]
    providers = request.config_dict[PROVIDERS]
    data = [_model_object(name, route) for name, route in providers.names()
            if key.allows(route.provider.name, route.full)]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    route = resolve_for_key(request.config_dict[PROVIDERS], request[API_KEY], name)
    return web.Response(body=orjson.dumps(_model_object(name, route)), content_type="application/json")
