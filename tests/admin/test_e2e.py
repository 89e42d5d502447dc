"""End to end across two `tokenhub serve` instances sharing Postgres, Redis and a namespace:
create → use through /v1/ of each → last_used_at → rotate with grace → both keys work → the old one
ends → revoke the new one → 401 on both, and the revoke's answer says both instances confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.runtime.demo import create_demo_app
from tests.support.procs import ADMIN_TOKEN, ServeProcess, provider, run_migrate, serving, write_config

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "demo/echo", "messages": [{"role": "user", "content": "hello"}]}
GRACE_SECONDS = 4.0


@contextlib.asynccontextmanager
async def two_instances(tmp_path: Path, database_url: str, redis_url: str, namespace: str,
                        upstream: str) -> AsyncIterator[tuple[ServeProcess, ServeProcess]]:
    settings: dict[str, Any] = {
        "database_url": database_url, "redis_url": redis_url, "namespace": namespace,
        "providers": [provider("demo", upstream, ["echo"])],
        "keystore": {"last_used_flush_seconds": 0.3, "ack_timeout_seconds": 5.0, "heartbeat_seconds": 0.5},
        "logging": {"level": "WARNING"},
    }
    first = write_config(tmp_path, name="a.toml", **settings)
    second = write_config(tmp_path, name="b.toml", **settings)
    run_migrate(first)
    async with serving(first) as a, serving(second) as b:
        yield a, b


async def _chat(http: aiohttp.ClientSession, instance: ServeProcess, key: str) -> int:
    async with http.post(instance.url("/v1/chat/completions"), json=CHAT,
                         headers={"Authorization": f"Bearer {key}"}) as resp:
        await resp.read()
        return resp.status


async def _admin(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body, headers=ADMIN) as resp:
        payload = await resp.json()
        assert resp.status in (200, 201), payload
        return payload


async def _until(check: Any, timeout: float = 20.0) -> None:
    """Poll until `check()` (an async predicate) holds: a guard against hanging, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_create_use_rotate_revoke_across_two_instances(
        tmp_path: Path, database_url: str, redis_url: str, namespace: str, pool: Any, redis: Any,
        aiohttp_server: Any) -> None:
    upstream = await aiohttp_server(create_demo_app(models=("echo",)))
    async with two_instances(tmp_path, database_url, redis_url, namespace, str(upstream.make_url("/v1"))) as (a, b), \
            aiohttp.ClientSession() as http:
        old = await _admin(http, "POST", a.admin_url("/admin/keys"), {"name": "e2e", "account": "acme"})
        assert [await _chat(http, i, old["key"]) for i in (a, b)] == [200, 200]

        async def last_used_shows() -> bool:
            listed = await _admin(http, "GET", b.admin_url("/admin/keys?account=acme"))
            return listed["data"][0]["last_used_at"] is not None
        await _until(last_used_shows)

        new = await _admin(http, "POST", b.admin_url(f"/admin/keys/{old['id']}/rotate"),
                           {"grace_seconds": GRACE_SECONDS})
        assert new["rotated_from"] == old["id"] and new["propagation"]["confirmed"] == 2
        assert [await _chat(http, i, k) for k in (old["key"], new["key"]) for i in (a, b)] == [200] * 4

        async def old_key_ended() -> bool:
            return [await _chat(http, i, old["key"]) for i in (a, b)] == [401, 401]
        await _until(old_key_ended)
        assert [await _chat(http, i, new["key"]) for i in (a, b)] == [200, 200]  # both caches warm

        revoked = await _admin(http, "POST", a.admin_url(f"/admin/keys/{new['id']}/revoke"))
        assert revoked["propagation"] == {"instances": 2, "confirmed": 2, "published": True}
        assert [await _chat(http, i, new["key"]) for i in (a, b)] == [401, 401]  # no waiting: already everywhere
