"""Liveness (`/healthz`) and readiness (`/readyz`).

Readiness is false until Postgres, Redis and the revocation feed have all been up once, and false
again while draining. After start it stays true through a dependency outage and reports it in the
body: Postgres and Redis are shared by every instance, so failing readiness on their outage would
pull every instance out of the load balancer at once, while the proxy still serves what its degraded
modes allow (README, "Degraded modes").

The body reports this instance's offset to the Postgres clock (`clock`); past the keystore's
`clock_max_offset_seconds` the instance answers 503 `clock_skew` until the clock is fixed.
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
    snap = store.snapshot()
    checks = await dependencies(store)
    clock = {"offset_seconds": round(snap.clock_offset_s, 6), "measured": snap.clock_measured,
             "within_bound": snap.clock_within_bound}
    if snap.clock_measured and not snap.clock_within_bound:
        # Decisions still use Postgres time, but a clock this far off is an operator's problem to see.
        return web.json_response({"status": "clock_skew", "checks": checks, "clock": clock}, status=503)
    if all(checks.values()):
        return web.json_response({"status": "ready", "checks": checks, "clock": clock})
    if lifecycle.started:
        return web.json_response({"status": "degraded", "checks": checks, "clock": clock})
    return web.json_response({"status": "starting", "checks": checks, "clock": clock}, status=503)
