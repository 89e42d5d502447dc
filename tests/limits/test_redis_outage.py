"""Redis stopped and restarted (a real redis-server of the test's own) under limited traffic through three
`tokenhub serve` processes: during the outage every request is answered (200 or 429, no 5xx, no hang) and
each instance admits its share; after the restart, with an empty Redis, the fleet does not get a fresh
window: what the instances admitted meanwhile is counted again before more is admitted."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.limits.helpers import admitted_by_allowance
from tests.support.fakes import FakeProvider
from tests.support.procs import (
    ADMIN_TOKEN,
    ServeProcess,
    free_port,
    provider,
    run_migrate,
    serving,
    write_config,
)

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
RPM = 30


class RedisServer:
    """A throwaway redis-server without persistence: a restart comes back empty."""

    def __init__(self, directory: Path) -> None:
        self.port, self._dir = free_port(), directory
        self._proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", str(self._dir)], stdout=subprocess.DEVNULL)

    async def start(self) -> None:
        self._spawn()
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)


@pytest.fixture
async def outage_fleet(tmp_path: Path, database_url: str, namespace: str,
                       aiohttp_server: Any) -> AsyncIterator[tuple[list[ServeProcess], RedisServer]]:
    redis = RedisServer(tmp_path)
    await redis.start()
    upstream = await aiohttp_server(FakeProvider().app)
    settings: dict[str, Any] = {
        "database_url": database_url, "redis_url": f"redis://127.0.0.1:{redis.port}/0", "namespace": namespace,
        "providers": [provider("demo", str(upstream.make_url("/v1")), ["echo"])], "logging": {"level": "WARNING"},
        "limits": {"fallback_instances": 3, "retry_redis_seconds": 0.5},
        "redis": {"timeout_seconds": 1.0, "connect_timeout_seconds": 1.0},
    }
    configs = [write_config(tmp_path, name=f"{n}.toml", **settings) for n in "abc"]
    run_migrate(configs[0])
    try:
        async with contextlib.AsyncExitStack() as stack:
            yield [await stack.enter_async_context(serving(c)) for c in configs], redis
    finally:
        redis.stop()


async def _statuses(http: aiohttp.ClientSession, procs: list[ServeProcess], key: str, n: int) -> list[int]:
    async def one(proc: ServeProcess) -> int:
        async with http.post(proc.url("/v1/chat/completions"), json=CHAT,
                             headers={"Authorization": f"Bearer {key}"}) as resp:
            await resp.read()
            return resp.status

    return list(await asyncio.gather(*(one(procs[i % 3]) for i in range(n))))


async def _recovered(http: aiohttp.ClientSession, proc: ServeProcess) -> bool:
    async with http.get(proc.admin_url("/metrics"), headers=ADMIN) as resp:
        text = await resp.text()
    return "tokenhub_limits_redis_up 1.0" in text and "tokenhub_limits_pending_carry_keys 0.0" in text


async def test_redis_stopped_and_restarted_under_limited_traffic(outage_fleet) -> None:
    procs, redis = outage_fleet
    timeout = aiohttp.ClientTimeout(total=20)  # a hang guard: every request must be answered well before
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(procs[0].admin_url("/admin/keys"), headers=ADMIN,
                             json={"name": "o", "limits": {"requests_per_minute": RPM}}) as resp:
            key = (await resp.json())["key"]
        assert await _statuses(http, procs, key, 3) == [200, 200, 200]
        before = await admitted_by_allowance(http, procs)
        redis.stop()
        began = time.monotonic()
        during = await _statuses(http, procs, key, 45)
        assert set(during) <= {200, 429}  # never a 5xx storm
        local_refill = 3 * (RPM / 3) / 60 * (time.monotonic() - began)
        # 3 instances x their share (RPM / 3), plus what the allowances they held (counted in Redis before
        # it went away, each at most 1/allowance_share of what was left) admitted until Redis was missed.
        held = await admitted_by_allowance(http, procs) - before
        assert held <= 3 * (RPM - 3) // 8
        assert during.count(200) <= RPM + local_refill + held
        await redis.start()  # empty: the shared bucket is gone
        restarted = time.monotonic()
        for _ in range(300):  # until every instance decides in Redis again and has handed its carry back
            if all([await _recovered(http, p) for p in procs]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the instances never resumed shared counting")
        after = await _statuses(http, procs, key, 30)
        refill = RPM / 60 * (time.monotonic() - restarted)
        # A fresh window would admit RPM more; the carries leave RPM minus what the outage admitted.
        assert after.count(200) <= max(0, RPM - during.count(200)) + refill + 1
        assert set(after) <= {200, 429}
