"""Fleet test helpers: configs for `tokenhub serve` processes against throwaway Sentinel, Cluster,
PgBouncer and Postgres processes (tests/support/fleet_services.py), and small HTTP helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.runtime.demo import DEMO_MODELS
from tests.support.fleet_services import missing
from tests.support.procs import ADMIN_TOKEN, ServeProcess, provider, write_config

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
# Fast feeds and polls so a test's waits stay short; each bound the README states scales with these.
FAST_KEYSTORE = {"ping_interval_seconds": 0.5, "poll_interval_seconds": 0.2, "heartbeat_seconds": 0.5,
                 # a revoke returns as soon as every live instance confirmed; the longer wait only matters
                 # on a loaded CI machine, where 2 s sometimes missed one confirmation after a failover
                 "ack_timeout_seconds": 6.0, "resubscribe_delay_seconds": 0.2}


def need(*binaries: str) -> None:
    """Skip, naming what is missing, when a Debian package's binary is absent (dev.sh test installs
    them; a machine where the install failed reports the skip instead of a confusing error)."""
    gone = missing(*binaries)
    if gone:
        pytest.skip(f"not installed: {', '.join(gone)} (bash deploy/dev.sh test installs them)")


def fleet_config(directory: Path, name: str, *, database_url: str, redis: dict[str, Any], namespace: str,
                 demo_url: str, postgres: dict[str, Any] | None = None, **sections: Any) -> Path:
    """A `tokenhub serve` config with the demo provider, `redis` as the [redis] section (mode, url,
    sentinels...) and optional [postgres] extras."""
    return write_config(directory, name=name, database_url=database_url, redis_url=redis.get("url", ""),
                        namespace=namespace, providers=[provider("demo", demo_url, DEMO_MODELS)],
                        redis=redis, postgres={"dsn": database_url, **(postgres or {})},
                        keystore=FAST_KEYSTORE, logging={"level": "INFO", "format": "json"}, **sections)


async def admin(http: aiohttp.ClientSession, proc: ServeProcess, method: str, path: str,
                body: dict[str, Any] | None = None) -> Any:
    async with http.request(method, proc.admin_url(path), json=body, headers=ADMIN) as r:
        payload = await r.json()
        assert r.status < 300, payload
        return payload


async def chat(http: aiohttp.ClientSession, proc: ServeProcess, key: str) -> int:
    async with http.post(proc.url("/v1/chat/completions"), json=CHAT,
                         headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status


async def feed_up(http: aiohttp.ClientSession, proc: ServeProcess) -> bool:
    async with http.get(proc.url("/readyz")) as r:
        body = await r.json()
        return bool(body.get("checks", {}).get("revocation_feed"))


async def decided(http: aiohttp.ClientSession, proc: ServeProcess, by: str) -> float:
    """Requests of limited keys this instance decided `by` "redis" (fleet-wide) or "local" (its
    fallback share), from its /metrics."""
    async with http.get(proc.admin_url("/metrics")) as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tokenhub_limits_decisions_total{") and f'by="{by}"' in line)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Poll until `check()` holds: a guard against hanging, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout}s"
        await asyncio.sleep(0.1)


async def confirmed_by_both(http: aiohttp.ClientSession, a: ServeProcess, b: ServeProcess) -> bool:
    """Whether a revoke (of a fresh probe key) is confirmed by both instances: right after Redis failed
    over or restarted, a revoke may honestly count fewer instances until their heartbeats are back."""
    key = await admin(http, a, "POST", "/admin/keys", {"name": "probe"})
    revoked = await admin(http, b, "POST", f"/admin/keys/{key['id']}/revoke")
    return bool(revoked["propagation"]["confirmed"] == 2)


def server_error_report(traffic: Traffic, *procs: ServeProcess) -> str:
    """For a failed "no 5xx" assertion: the statuses other than 200 and what the instances logged."""
    lines = [line[:300] for p in procs for line in p.log().splitlines()
             if " 50" in line or "ERROR" in line or "WARNING" in line]
    return f"statuses {[s for s in traffic.statuses if s != 200]}; logged: {lines[:40]}"


async def refused_by_both(http: aiohttp.ClientSession, a: ServeProcess, b: ServeProcess, key: str) -> None:
    assert [await chat(http, p, key) for p in (a, b)] == [401, 401]


async def refused_as_answered(http: aiohttp.ClientSession, a: ServeProcess, b: ServeProcess, key: str,
                               answer: dict[str, object]) -> None:
    """What the revoke's answer promises: every instance it reports as confirmed refuses the key at once;
    one it could not reach (the feed is down mid-failover) refuses it within the change-log poll, and
    from then on."""
    if answer["propagation"]["confirmed"] == 2:  # type: ignore[index]
        await refused_by_both(http, a, b, key)
        return

    async def refused() -> bool:
        return [await chat(http, p, key) for p in (a, b)] == [401, 401]
    await until(refused, "refused by both within the change-log poll", timeout=10)
    await refused_by_both(http, a, b, key)


@dataclass
class Traffic:
    """Clients sending chat requests with one key to every instance until stopped; records each
    answer's status and duration."""

    http: aiohttp.ClientSession
    instances: list[ServeProcess]
    key: str
    statuses: list[int] = field(default_factory=list)
    slowest_s: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, clients: int = 4) -> Traffic:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(clients)]
        return self

    async def _client(self, i: int) -> None:
        n = i
        while not self._stop.is_set():
            proc = self.instances[n % len(self.instances)]
            n += 1
            t0 = time.monotonic()
            try:
                status = await chat(self.http, proc, self.key)
            except aiohttp.ClientError:
                status = 599  # the connection failed: counted with the 5xx
            self.slowest_s = max(self.slowest_s, time.monotonic() - t0)
            self.statuses.append(status)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @property
    def server_errors(self) -> int:
        return sum(1 for s in self.statuses if s >= 500)
