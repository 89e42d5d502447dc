"""A real `tokenhub serve` whose Postgres goes away (a TCP gate cut: every connection dropped, new ones
refused) while traffic continues on warm keys, then comes back: every request is in the rollups, each
exactly once. The cut lasts several failed flushes (`flush_seconds` 0.2 s) rather than 30 s of wall time:
what matters is that writes failed and were retried, which the flush-failure counter proves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support import TcpGate, gated_url
from tests.support.metering import CHAT, Recorder
from tests.support.procs import ADMIN_TOKEN, ServeProcess, provider, serving, write_config

pytestmark = pytest.mark.slow
GUARD = 30.0


@pytest.fixture
def gate(pg_gate: TcpGate) -> TcpGate:
    return pg_gate


async def requests_in_postgres(pool: asyncpg.Pool, key_id: str) -> int:
    return int(await pool.fetchval("SELECT coalesce(sum(requests), 0) FROM usage_hourly WHERE key_id = $1", key_id))


async def until(check: Any) -> None:
    async with asyncio.timeout(GUARD):
        while not await check():
            await asyncio.sleep(0.05)


async def flush_failures(session: aiohttp.ClientSession, proc: ServeProcess) -> float:
    async with session.get(proc.admin_url("/metrics")) as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tokenhub_usage_flush_failures_total"))


async def test_postgres_outage_loses_no_usage(tmp_path: Path, database_url: str, redis_url: str, namespace: str,
                                              pool: asyncpg.Pool, gate: TcpGate, recorder: Recorder,
                                              aiohttp_server: Any) -> None:
    upstream = await aiohttp_server(recorder.app())
    config = write_config(tmp_path, database_url=gated_url(database_url, gate), redis_url=redis_url, namespace=namespace,
                          providers=[provider("openai", str(upstream.make_url("/v1")), [CHAT])],
                          metering={"flush_seconds": 0.2}, keystore={"pg_down_grace_seconds": 120.0})
    body = {"model": f"openai/{CHAT}", "messages": [{"role": "user", "content": "hi"}]}
    async with serving(config) as proc, aiohttp.ClientSession() as session:
        async with session.post(proc.admin_url("/admin/keys"), json={"name": "outage"},
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
            created = await r.json()
        auth, key_id = {"Authorization": f"Bearer {created['key']}"}, created["id"]

        async def chat(n: int) -> None:
            for _ in range(n):
                async with session.post(proc.url("/v1/chat/completions"), json=body, headers=auth) as r:
                    assert r.status == 200, await r.text()

        await chat(2)
        await until(lambda: _equals(requests_in_postgres(pool, key_id), 2))
        gate.cut()
        await chat(5)  # warm key: served while Postgres is gone
        failed = await flush_failures(session, proc)
        await until(lambda: _more(flush_failures(session, proc), failed + 2))  # writes failed, and were retried
        assert await requests_in_postgres(pool, key_id) == 2
        gate.restore()
        await until(lambda: _equals(requests_in_postgres(pool, key_id), 7))
    assert await pool.fetchval("SELECT sum(input_tokens) FROM usage_hourly WHERE key_id = $1", key_id) == 7 * 19


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _more(value: Any, floor: float) -> bool:
    return bool(await value >= floor)
