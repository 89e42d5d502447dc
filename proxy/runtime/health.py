"""Liveness (`/healthz`) and readiness (`/readyz`).

Readiness is false until Postgres, Redis and the revocation feed have all been up once, and false
again while draining. After start it stays true through a dependency outage and reports it in the
body: Postgres and Redis are shared by every instance, so failing readiness on their outage would
pull every instance out of the load balancer at once, while the proxy still serves what its degraded
modes allow (README, "Degraded modes").
"""

from __future__ import annotations

from aiohttp import web

from proxy.state import DRAINING, KEYSTORE, STARTED

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
    started = request.config_dict[STARTED]
    if all(checks.values()):
        started[0] = True
        return web.json_response({"status": "ready", "checks": checks})
    if started[0]:
        return web.json_response({"status": "degraded", "checks": checks})
    return web.json_response({"status": "starting", "checks": checks}, status=503)
