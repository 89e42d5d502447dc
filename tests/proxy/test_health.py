"""/healthz and /readyz: ready once everything has been up; degraded, not unready, on a later outage."""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.app import create_app
from proxy.state import KEYSTORE, LIFECYCLE
from tests.support import TcpGate, eventually, gated_url
from tests.support.proxy import proxy_config


@pytest.fixture
async def gated(aiohttp_client: Any, pool, database_url, redis_url, settings, provider_url, redis_gate,
                clock) -> TestClient:
    config = proxy_config(database_url, gated_url(redis_url, redis_gate), settings, provider_url)
    return await aiohttp_client(create_app(config, clock=clock))


async def test_healthz_is_always_ok(proxy: TestClient) -> None:
    resp = await proxy.get("/healthz")
    assert resp.status == 200 and "x-request-id" in resp.headers


async def test_not_ready_until_the_feed_is_up_then_ready(gated: TestClient, redis_gate: TcpGate) -> None:
    await eventually(lambda: gated.app[KEYSTORE].feed_up)
    resp = await gated.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"


async def test_a_redis_outage_after_start_is_reported_not_unready(gated: TestClient, redis_gate: TcpGate) -> None:
    await eventually(lambda: gated.app[LIFECYCLE].started)
    assert (await gated.get("/readyz")).status == 200
    redis_gate.cut()
    await eventually(lambda: not gated.app[KEYSTORE].feed_up)
    resp = await gated.get("/readyz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "degraded"
    assert body["checks"] == {"postgres": True, "redis": False, "revocation_feed": False}


async def test_not_ready_at_start_while_redis_is_down(aiohttp_client: Any, pool, database_url, settings,
                                                      provider_url, redis_gate, clock, redis_url) -> None:
    redis_gate.cut()
    config = proxy_config(database_url, gated_url(redis_url, redis_gate), settings, provider_url)
    client = await aiohttp_client(create_app(config, clock=clock))
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["status"] == "starting"


async def test_draining_is_not_ready(proxy: TestClient) -> None:
    proxy.app[LIFECYCLE].drain()
    resp = await proxy.get("/readyz")
    assert resp.status == 503 and (await resp.json())["status"] == "draining"
