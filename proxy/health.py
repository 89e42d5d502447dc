"""Liveness (`/healthz`) and readiness (`/readyz`: Postgres, Redis and the revocation feed are up)."""

from __future__ import annotations

from aiohttp import web

from .state import DRAINING, KEYSTORE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    if request.config_dict[DRAINING][0]:
        return web.json_response({"status": "draining"}, status=503)
    store = request.config_dict[KEYSTORE]
    checks = {"postgres": await store.postgres_ok(), "redis": await store.redis_ok(),
              "revocation_feed": store.feed_up}
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)
