"""The API listeners' request path: the endpoint table decides what may be called, the provider's
style how it is called. Authenticate (auth.py), find the route, check it, forward, relay (relay.py).

Order of work for every endpoint in the table (styles/endpoints.py):

1. `endpoint_mw` finds the endpoint (anything not in the table is a 404 from the router, before any
   upstream contact) and puts its error shape on the request, so even a 401 comes out in the shape the
   client's SDK parses; then auth.py authenticates the key.
2. The route (provider and model) comes from where the endpoint keeps the model: the JSON body, the
   path's deployment (Azure's own paths) or the record of who created a stored response.
3. The key must be allowed the route (403), the provider must serve the endpoint (404), body fields that
   name models or stored objects no check can vouch for are refused (400), and a
   `previous_response_id` must be one this key created (404).
4. The *parsed* body is re-serialised with the provider's model name; the style builds the URL and the
   credential headers; the client's query string goes on only where the endpoint allows it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from keystore import ApiKey, ResponseOwner, ResponseOwners

from proxy.config import ProviderConfig, ServerConfig
from proxy.errors import ERROR_SHAPE, Forbidden, Handler, InvalidRequest, NotFound
from proxy.gateway.auth import API_KEY, auth_mw
from proxy.gateway.body import parse_json, parse_object, read_body
from proxy.gateway.headers import outbound_headers
from proxy.gateway.providers import ProviderTable, Route
from proxy.gateway.relay import relay
from proxy.gateway.styles import ENDPOINTS, Endpoint, ModelAt, Owner, Style
from proxy.gateway.styles.models import listing_errors, model_object, models_page
from proxy.gateway.styles.owners import ID_RE, RESPONSE_OWNERS, IdTap, owned, remember
from proxy.limits import hooks as limits
from proxy.log import REQUEST_ID_KEY
from proxy.metering.wiring import combine, metering_tap
from proxy.state import CONFIG, PROVIDERS, UPSTREAM_HTTP, root

_MAX_ECHO = 200  # longest model name we repeat back in an error message
ENDPOINT = web.RequestKey("endpoint", Endpoint)
_BY_ROUTE = {(e.method, e.path): e for e in ENDPOINTS}
_OWNED_FIELDS = ("previous_response_id",)  # body fields naming a stored response (Owner.CREATES endpoints)


@web.middleware
async def endpoint_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    endpoint = _BY_ROUTE.get((request.method, resource.canonical)) if resource is not None else None
    if endpoint is not None:
        request[ENDPOINT] = endpoint
        request[ERROR_SHAPE] = endpoint.errors
    else:  # the models list (answered here) speaks the asking SDK's API
        request[ERROR_SHAPE] = listing_errors(request.headers)
    return await handler(request)


def _endpoint_routes(prefix: str) -> list[web.RouteDef]:
    return [web.route(e.method, e.path.removeprefix(prefix), forward) for e in ENDPOINTS
            if e.path.startswith(prefix + "/")]


def make_subapp() -> web.Application:
    """`/v1/`: the models list and every `/v1/…` endpoint of the table."""
    app = web.Application(middlewares=[endpoint_mw, auth_mw])
    app.add_routes([web.get("/models", list_models), web.get("/models/{model:.+}", get_model),
                    *_endpoint_routes("/v1")])
    return app


def make_azure_subapp() -> web.Application:
    """`/openai/`: the AzureOpenAI client's own deployment paths."""
    app = web.Application(middlewares=[endpoint_mw, auth_mw])
    app.add_routes(_endpoint_routes("/openai"))
    return app


def resolve_for_key(providers: ProviderTable, key: ApiKey, requested: str) -> Route:
    """The route serving `requested`; 404 when no provider serves it, 403 when the key may not use it
    (without saying what it may use)."""
    return _checked(providers.resolve(requested), key, requested)


def _checked(route: Route | None, key: ApiKey, requested: str, param: str = "model") -> Route:
    if route is None:
        raise NotFound(f"The model '{requested[:_MAX_ECHO]}' does not exist or is not served here.",
                       param=param, code="model_not_found")
    if not key.allows(route.provider.name, route.full):
        raise Forbidden("This API key is not allowed to use this model.", param=param)
    return route


def _served(providers: ProviderTable, route: Route, endpoint: Endpoint, requested: str) -> Route:
    if not providers.serves(route, endpoint):
        raise NotFound(f"The model '{requested[:_MAX_ECHO]}' is not served on {endpoint.path}.",
                       param="model", code="model_not_found")
    return route


def _path_params(request: web.Request) -> dict[str, str]:
    params = dict(request.match_info)
    if "id" in params and not ID_RE.fullmatch(params["id"]):
        raise _no_such_response(params["id"])
    return params


def _names_unchecked(body: dict[str, Any], spec: str) -> bool:
    """Does `body` carry what `spec` names: a field (`models`), a field of a list's objects
    (`tools[].model`), or such a field with one value (`input[].type=item_reference`)?"""
    outer, _, inner = spec.partition("[].")
    value = body.get(outer)
    if not inner:
        return value is not None
    field, _, wanted = inner.partition("=")
    return isinstance(value, list) and any(
        isinstance(v, dict) and v.get(field) is not None and (not wanted or v.get(field) == wanted) for v in value)


def _refuse_unchecked(body: dict[str, Any], endpoint: Endpoint) -> None:
    for name in endpoint.refused:
        if _names_unchecked(body, name):
            raise InvalidRequest(f"'{name}' is not accepted by this gateway: the models or stored objects it "
                                 "names cannot be checked against your key's permissions.",
                                 param=name, code="unsupported_parameter")


def _by_deployment(providers: ProviderTable, key: ApiKey, params: dict[str, str], body: dict[str, Any]) -> Route:
    deployment = params["deployment"]
    route = _checked(providers.resolve_deployment(deployment), key, deployment)
    named = body.get("model")  # Azure ignores it; we replace it, but a contradiction is refused
    if named is not None and named != route.model and (
            not isinstance(named, str) or providers.resolve_deployment(named) != route):
        raise InvalidRequest("The body's model does not name the path's deployment.", param="model")
    return route


def _no_such_response(response_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"No response found with id '{response_id[:80]}'.", param=param, code="response_not_found")


async def _by_owner(app: web.Application, providers: ProviderTable, key: ApiKey, response_id: str,
                    param: str | None = None) -> Route:
    """The route of a stored response this key created; 404 for anyone else (see styles/owners.py)."""
    owner = await owned(app[RESPONSE_OWNERS], key, response_id, param)
    route = providers.resolve(owner.model)
    if route is None:  # the model has since left the config: nothing can serve the response
        raise _no_such_response(response_id, param)
    return _checked(route, key, owner.model)


async def _check_owned_fields(app: web.Application, providers: ProviderTable, key: ApiKey, route: Route,
                              body: dict[str, Any]) -> None:
    """A stored response named in the body (`previous_response_id`) must be this key's, on this provider."""
    for name in _OWNED_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"'{name}' must be a string.", param=name)
        previous = await _by_owner(app, providers, key, value, param=name)
        if previous.provider.name != route.provider.name:
            raise _no_such_response(value, name)


async def _route(app: web.Application, endpoint: Endpoint, key: ApiKey, params: dict[str, str],
                 body: dict[str, Any] | None) -> Route:
    providers = app[PROVIDERS]
    if endpoint.model_at is ModelAt.OWNER:
        route = await _by_owner(app, providers, key, params["id"])
        return _served(providers, route, endpoint, route.full)
    assert body is not None
    if endpoint.model_at is ModelAt.DEPLOYMENT:
        route = _by_deployment(providers, key, params, body)
    else:
        route = resolve_for_key(providers, key, body["model"])
    _served(providers, route, endpoint, route.full)
    _refuse_unchecked(body, endpoint)
    if endpoint.owner is Owner.CREATES:
        await _check_owned_fields(app, providers, key, route, body)
    return route


async def _read(request: web.Request, server: ServerConfig, endpoint: Endpoint) -> dict[str, Any] | None:
    if endpoint.model_at is ModelAt.OWNER:
        return None  # reads, deletes and cancels of a stored response: no body is forwarded
    raw = await read_body(request, server.max_body_bytes, server.body_timeout_seconds)
    return parse_json(raw) if endpoint.model_at is ModelAt.BODY else parse_object(raw)


def _id_tap(request: web.Request, owners: ResponseOwners, key: ApiKey, route: Route) -> IdTap:
    return IdTap(lambda found: request.setdefault(_WRITING, []).append(
        remember(owners, ResponseOwner(found, key.id, route.provider.name, route.full))))


_WRITING = web.RequestKey("owner_writes", list)


def _headers(request: web.Request, style: Style, provider: ProviderConfig) -> CIMultiDict[str]:
    """The allowed client headers (headers.py), then what the style sets or removes (its credential)."""
    headers = outbound_headers(request.headers, "", request[REQUEST_ID_KEY])
    for name, value in style.headers(provider, request.headers).items():
        if value is None:
            headers.popall(name, None)
        else:
            headers[name] = value
    return headers


async def forward(request: web.Request) -> web.StreamResponse:
    endpoint = request[ENDPOINT]
    shared = root(request)  # the app-wide objects, looked up once for the whole request
    config = shared[CONFIG]
    key = request[API_KEY]
    params = _path_params(request)
    body = await _read(request, config.server, endpoint)
    route = await _route(shared, endpoint, key, params, body)
    style, provider = route.style, route.provider
    model = style.upstream_model(provider, route.model)
    if body is not None:
        body["model"] = model
    headers = _headers(request, style, provider)
    query = request.rel_url.raw_query_string if endpoint.query else ""
    url = style.url(provider, endpoint, model, params, query)
    # metering_tap may ask a stream for its usage (body changed), so it comes before the body is serialised
    tap = combine(metering_tap(request, key.id, route, body, endpoint.usage, ask_usage=endpoint.ask_usage),
                  _id_tap(request, shared[RESPONSE_OWNERS], key, route) if endpoint.owner is Owner.CREATES else None)
    payload = orjson.dumps(body) if body is not None else b""
    ticket = await limits.reserve(request, key, route, endpoint.max_tokens, body, len(payload))  # 400/402/429
    try:
        response = await relay(request, shared[UPSTREAM_HTTP], url, payload, headers, config.upstream,
                               provider.name, tap, write_timeout=config.server.client_write_timeout_seconds)
    finally:
        limits.finish(request, ticket)  # reconcile to the metered figure, also when the client left
    for write in request.get(_WRITING, ()):
        await asyncio.shield(write)  # a whole answer is sent only once its creator is on record
    return response


async def list_models(request: web.Request) -> web.Response:
    """What this key may call, of every style: `provider/model` names first, then the aliases."""
    key = request[API_KEY]
    providers = root(request)[PROVIDERS]
    allowed = [(name, route.provider.name) for name, route in providers.names()
               if key.allows(route.provider.name, route.full)]
    return web.Response(body=orjson.dumps(models_page(request.headers, allowed)), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    route = resolve_for_key(root(request)[PROVIDERS], request[API_KEY], name)
    return web.Response(body=orjson.dumps(model_object(request.headers, name, route.provider.name)),
                        content_type="application/json")
