"""Small HTTP helpers for the scenarios that drive the proxy from Python (cold keys, revocation, memory)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from .context import chat_body
from .procs import BenchError

CHAT_BODY = chat_body().encode()


def session(limit: int = 256, source: str | None = None) -> aiohttp.ClientSession:
    """A client session; `source` picks the local address (any 127.x.y.z is this machine), so one
    machine can play several clients."""
    connector = aiohttp.TCPConnector(limit=limit, local_addr=(source, 0) if source else None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


async def chat(client: aiohttp.ClientSession, base: str, key: str) -> tuple[int, float]:
    """One non-streaming chat completion; returns (status, seconds to the whole answer)."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with client.post(f"{base}/v1/chat/completions", data=CHAT_BODY, headers=headers) as r:
        await r.read()
        return r.status, time.perf_counter() - started


async def metric(client: aiohttp.ClientSession, admin: str, name: str) -> float:
    """The value of an unlabelled metric on the admin listener's /metrics."""
    async with client.get(f"{admin}/metrics") as r:
        text = await r.text()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    raise BenchError(f"metric {name} not found at {admin}/metrics")


def read_metric(admin: str, name: str) -> float:
    """`metric`, from synchronous code."""
    async def read() -> float:
        async with session() as client:
            return await metric(client, admin, name)

    return asyncio.run(read())


async def admin_call(client: aiohttp.ClientSession, admin: str, token: str, method: str, path: str,
                     payload: object = None) -> dict[str, object]:
    async with client.request(method, f"{admin}{path}", json=payload,
                              headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.json(content_type=None)
        if r.status >= 300:
            raise BenchError(f"admin {method} {path} answered {r.status}: {body}")
        return body  # type: ignore[no-any-return]
