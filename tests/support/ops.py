"""Helpers of the operations tests: real `tokenhub serve`/`tokenhub local` processes, admin calls, metrics samples."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.procs import ADMIN_TOKEN, ServeProcess

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


async def admin_call(proc: ServeProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as session, session.request(
            method, proc.admin_url(path), json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
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
    async with aiohttp.ClientSession() as session, session.get(proc.admin_url("/metrics")) as r:
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
