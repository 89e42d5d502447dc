"""Liveness (`/healthz`) and readiness (`/readyz`).

Readiness is false until Postgres, Redis and the revocation feed have all been up once, and false
again while draining. After start it stays true through a dependency outage and reports it in the
body: Postgres and Redis are shared by every instance, so failing readiness on their outage would
pull every instance out of the load balancer at once, while the proxy still serves what its degraded
modes allow (README, "Degraded modes").
"""

from __future__ import annotations

from aiohttp import web

from proxy.runtime.lifecycle import dependencies
from proxy.state import KEYSTORE, LIFECYCLE

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    lifecycle = request.config_dict[LIFECYCLE]  # read only: runtime/lifecycle.py says who moves it
    if lifecycle.draining:
        return web.json_response({"status": "draining"}, status=503)
    store = request.config_dict[KEYSTORE]
    checks = await dependencies(store)
    if all(checks.values()):
        return web.json_response({"status": "ready", "checks": checks})
    if lifecycle.started:
        return web.json_response({"status": "degraded", "checks": checks})
    return web.json_response({"status": "starting", "checks": checks}, status=503)
