"""The instance's lifecycle: the start watch marks it started, `/readyz` only reads it, draining is one
step, and the admin app refuses to start before the proxy app whose keystore it uses."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from proxy.app import create_admin_app, create_app
from proxy.config import Config
from proxy.runtime.lifecycle import Lifecycle
from proxy.runtime.resources import start_watch_ctx
from proxy.state import KEYSTORE, LIFECYCLE
from tests.support import FakeClock, eventually


async def test_the_start_watch_marks_the_instance_started(proxy: TestClient) -> None:
    await eventually(lambda: proxy.app[LIFECYCLE].started)
    assert (await (await proxy.get("/readyz")).json())["status"] == "ready"


async def test_asking_for_readiness_does_not_change_the_lifecycle(aiohttp_client: Any, pool: asyncpg.Pool,
                                                                  config: Config, clock: FakeClock) -> None:
    app = create_app(config, clock=clock)
    app.cleanup_ctx.remove(start_watch_ctx)  # nobody marks it started: only /readyz could
    client = await aiohttp_client(app)
    await eventually(lambda: client.app[KEYSTORE].feed_up)
    for _ in range(3):
        resp = await client.get("/readyz")
        assert resp.status == 200 and (await resp.json())["status"] == "ready"
    assert not client.app[LIFECYCLE].started


async def test_draining_is_one_way() -> None:
    lifecycle = Lifecycle()
    assert not lifecycle.draining and not lifecycle.started
    lifecycle.drain()
    lifecycle.mark_started()
    assert lifecycle.draining and lifecycle.started


async def test_the_admin_app_refuses_to_start_before_the_proxy_app(aiohttp_server: Any, pool: asyncpg.Pool,
                                                                   config: Config) -> None:
    proxy_app = create_app(config)
    with pytest.raises(RuntimeError, match="start the proxy app before its admin app"):
        await aiohttp_server(create_admin_app(config, proxy_app))
