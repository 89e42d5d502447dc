"""Fixtures for tests that run real `tokenhub` processes against the real Postgres and Redis, with a
demo provider (proxy/demo.py) started in the test process."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.runtime.demo import DEMO_MODELS, ChunkHook, start_demo
from tests.procs import ADMIN_TOKEN, ServeProcess, provider, write_config

KEY_SHAPE = re.compile(r"th-[0-9A-Za-z_]{20,}")


class Demo:
    """The demo provider, running in this test process; `hold()` makes streams wait after a chunk."""

    def __init__(self) -> None:
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.streaming = asyncio.Event()  # set when a held stream has sent its first chunks
        self.release = asyncio.Event()
        self.hold_after: int | None = None

    async def on_chunk(self, n: int) -> None:
        if self.hold_after is not None and n == self.hold_after:
            self.streaming.set()
            await self.release.wait()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    d = Demo()
    hook: ChunkHook = d.on_chunk
    d.runner, d.port = await start_demo(port=0, on_chunk=hook)
    yield d
    d.release.set()
    await d.runner.cleanup()


@pytest.fixture
def make_config(tmp_path: Path, database_url: str, redis_url: str, namespace: str, migrated: None,
                demo: Demo) -> Callable[..., Path]:
    """A config file for `tokenhub serve`: free ports, the test database, this test's Redis namespace,
    the demo provider as provider `demo`."""
    def make(**sections: Any) -> Path:
        return write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace,
                            providers=[provider("demo", demo.base_url, DEMO_MODELS)], **sections)
    return make


async def admin_call(proc: ServeProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, proc.admin_url(path), json=body,
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
            assert r.status < 300, await r.text()
            return await r.json()


async def chat(session: aiohttp.ClientSession, proc: ServeProcess, key: str, text: str = "hi") -> tuple[int, str]:
    """One chat completion on a fresh connection; returns (status, the answering worker)."""
    body = {"model": "demo/echo", "messages": [{"role": "user", "content": text}]}
    async with session.post(proc.url("/v1/chat/completions"), json=body,
                            headers={"Authorization": f"Bearer {key}", "Connection": "close"}) as r:
        await r.read()
        return r.status, r.headers.get("x-tokenhub-worker", "?")


async def scrape(proc: ServeProcess) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(proc.admin_url("/metrics")) as r:
            assert r.status == 200
            return await r.text()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, rest = series.partition("{")
        have = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and have == want:
            return float(value)
    return 0.0


async def wait_until(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll an async or sync `check` until truthy (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


def refused(port: int) -> bool:
    """True if nothing accepts connections on 127.0.0.1:port."""
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0
