"""`/healthz` and `/readyz` answer on the admin listener too (where `/metrics` is), without a token,
with the same state as the proxy listener's."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from proxy.state import LIFECYCLE
from tests.support.admin import AdminStack


async def test_health_on_the_admin_port(anon: TestClient) -> None:
    r = await anon.get("/healthz")
    assert (r.status, await r.json()) == (200, {"status": "ok"})


async def test_readiness_on_the_admin_port_follows_the_instance(anon: TestClient, admin_stack: AdminStack) -> None:
    r = await anon.get("/readyz")
    assert r.status == 200 and (await r.json())["status"] in ("ready", "degraded")
    admin_stack.proxy.app[LIFECYCLE].drain()
    r = await anon.get("/readyz")
    assert (r.status, (await r.json())["status"]) == (503, "draining")
