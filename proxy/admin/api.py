"""The admin listener's routes: `/admin/…` REST behind the admin token, `/metrics` without it.

The REST calls live in a sub-application mounted at `/admin/`, so the token middleware guards every
one of them (unknown `/admin/` paths included) without a path allow-list. Mutations are audited by
the keystore in the same transaction, under the admin token's name and the request id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from keystore import Actor, KeyStore

from proxy.admin import openapi, usage
from proxy.admin.wire import (
    CREATE_FIELDS,
    ROTATE_FIELDS,
    UPDATE_FIELDS,
    account,
    audit_object,
    check_restrictions,
    grace_seconds,
    json_response,
    key_object,
    limit,
    limits_object,
    limits_patch,
    optional_time,
    propagation_object,
    query,
    read_object,
    status,
    string,
    string_list,
)
from proxy.errors import AuthenticationFailed, InvalidRequest
from proxy.log import REQUEST_ID_KEY
from proxy.state import CONFIG, KEYSTORE, METRICS, PROVIDERS

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_NAME = web.RequestKey("admin_name", str)
_BAD_TOKEN = "Invalid admin token. Send 'Authorization: Bearer <admin token>' (TOKENHUB_ADMIN_TOKEN)."
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tokenhub-admin"'}
routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    """Mount `/admin/` (token-guarded REST) and `/metrics`."""
    app.router.add_get("/metrics", metrics)
    app.add_subapp("/admin/", make_subapp(app[CONFIG].admin.tokens))


def make_subapp(tokens: Mapping[str, str]) -> web.Application:
    sub = web.Application(middlewares=[admin_token_mw(tokens)])
    sub.add_routes(routes)
    sub.add_routes(usage.routes)  # GET /admin/keys/{id}/usage
    return sub


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest from leaking the configured tokens' lengths.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def match_token(presented: str, digests: Mapping[str, bytes]) -> str | None:
    """The name of the admin token `presented` equals, or None. Compares against every configured
    token, with no early exit, so the time taken says nothing about which one (if any) matched."""
    wanted = _digest(presented)
    found: str | None = None
    for name, digest in digests.items():
        if hmac.compare_digest(wanted, digest) and found is None:
            found = name
    return found


def _presented(request: web.Request) -> str:
    values = request.headers.getall("Authorization", ())
    if len(values) != 1:
        raise AuthenticationFailed(_BAD_TOKEN, code="invalid_admin_token", headers=_CHALLENGE)
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(_BAD_TOKEN, code="invalid_admin_token", headers=_CHALLENGE)
    return token.strip()


def admin_token_mw(tokens: Mapping[str, str]) -> Middleware:
    digests = {name: _digest(token) for name, token in tokens.items()}

    @web.middleware
    async def check_admin_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        name = match_token(_presented(request), digests) if digests else None
        if name is None:
            log.warning("admin call refused: bad admin token (%s %s)", request.method, request.path)
            raise AuthenticationFailed(_BAD_TOKEN, code="invalid_admin_token", headers=_CHALLENGE)
        request[ADMIN_NAME] = name
        return await handler(request)

    return check_admin_token


def _store(request: web.Request) -> KeyStore:
    return request.config_dict[KEYSTORE]


def _actor(request: web.Request) -> Actor:
    return Actor(request[ADMIN_NAME], request.get(REQUEST_ID_KEY))


def _now(request: web.Request) -> float:
    return _store(request).time()


async def metrics(request: web.Request) -> web.Response:
    body = request.config_dict[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    ups = request.config_dict[PROVIDERS]
    return json_response(openapi.document([r.full for r in ups.routes()], list(ups.providers)))


@routes.get("/providers")
async def providers(request: web.Request) -> web.Response:
    query(request.query, frozenset())
    ups = request.config_dict[PROVIDERS]
    data = [{"name": name, "api": p.api, "models": [r.full for r in ups.routes() if r.provider.name == name]}
            for name, p in ups.providers.items()]
    return json_response({"data": data})


@routes.post("/keys")
async def create_key(request: web.Request) -> web.Response:
    body = await read_object(request, CREATE_FIELDS)
    if "name" not in body:
        raise InvalidRequest("name is required", param="name")
    models, providers_ = string_list(body, "allowed_models"), string_list(body, "allowed_providers")
    name, account_ = string(body, "name"), account(body)
    expires_at = optional_time(body, "expires_at")
    check_restrictions(models, providers_, request.config_dict[PROVIDERS])
    issued = await _store(request).create(_actor(request), name=name, account=account_, expires_at=expires_at,
                                          allowed_models=models, allowed_providers=providers_,
                                          limits=limits_object(body))
    created = key_object(issued.key, _now(request))
    await usage.with_usage(request, created)
    return json_response(created | {"key": issued.secret}, status=201)


@routes.get("/keys")
async def list_keys(request: web.Request) -> web.Response:
    params = query(request.query, frozenset({"account", "status", "limit", "cursor"}))
    found = await _store(request).list_keys(account=params.get("account"), status=status(params),
                                           limit=limit(params), cursor=params.get("cursor"))
    now = _now(request)
    data = [key_object(k, now) for k in found.data]
    await usage.with_usage(request, *data)
    reminder = request.config_dict[CONFIG].keystore.rotation_reminder_days  # the CLI and page flag older keys
    return json_response({"data": data, "next_cursor": found.next_cursor, "rotation_reminder_days": reminder})


@routes.get("/keys/{id}")
async def show_key(request: web.Request) -> web.Response:
    query(request.query, frozenset())
    key = await _store(request).get(request.match_info["id"])
    shown = key_object(key, _now(request))
    await usage.with_usage(request, shown)
    return json_response(shown)


@routes.patch("/keys/{id}")
async def update_key(request: web.Request) -> web.Response:
    body = await read_object(request, UPDATE_FIELDS)
    changes: dict[str, Any] = {f: string(body, f) if f == "name" else string_list(body, f)
                               for f in ("name", "allowed_models", "allowed_providers") if f in body}
    if "expires_at" in body:
        changes["expires_at"] = optional_time(body, "expires_at")
    if "limits" in body:
        changes["limits"] = limits_patch(body)
    store = _store(request)
    current = await store.get(request.match_info["id"])  # 404 for ids that cannot exist, before any write
    if "allowed_models" in changes or "allowed_providers" in changes:
        check_restrictions(changes.get("allowed_models", current.allowed_models),
                           changes.get("allowed_providers", current.allowed_providers),
                           request.config_dict[PROVIDERS])
    key, spread = await store.update(_actor(request), request.match_info["id"], **changes)
    updated = key_object(key, _now(request))
    await usage.with_usage(request, updated)
    return json_response(updated | {"propagation": propagation_object(spread)})


@routes.post("/keys/{id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    await read_object(request, frozenset(), empty_ok=True)
    key, spread = await _store(request).revoke(_actor(request), request.match_info["id"])
    revoked = key_object(key, _now(request))
    await usage.with_usage(request, revoked)
    return json_response(revoked | {"propagation": propagation_object(spread)})


@routes.post("/keys/{id}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    body = await read_object(request, ROTATE_FIELDS, empty_ok=True)
    issued, old, spread = await _store(request).rotate(_actor(request), request.match_info["id"],
                                                       grace_seconds=grace_seconds(body))
    now = _now(request)
    new, previous = key_object(issued.key, now), key_object(old, now)
    await usage.with_usage(request, new, previous)
    return json_response(new | {"key": issued.secret, "previous": previous, "propagation": propagation_object(spread)},
                         status=201)


@routes.get("/audit")
async def audit(request: web.Request) -> web.Response:
    params = query(request.query, frozenset({"key_id", "limit"}))
    events = await _store(request).audit(key_id=params.get("key_id"), limit=limit(params))
    return json_response({"data": [audit_object(e) for e in events]})
