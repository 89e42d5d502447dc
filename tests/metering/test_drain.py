"""A real `tokenhub serve` stopped with SIGTERM in the middle of traffic: the usage it counted is in
Postgres after it exits (the drain writes the last batch), including the stream that was still running;
its access log carries the usage fields."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from tests.support.metering import CHAT, PRICES, Recorder
from tests.support.procs import ADMIN_TOKEN, provider, serving, write_config

pytestmark = pytest.mark.slow
GUARD = 30.0  # seconds: against hanging, never a timing assertion


async def issue(session: aiohttp.ClientSession, admin_url: str) -> tuple[str, str]:
    async with session.post(f"{admin_url}/admin/keys", json={"name": "drain"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as r:
        created = await r.json()
    return created["key"], created["id"]


async def test_sigterm_mid_traffic_loses_no_usage(tmp_path: Path, database_url: str, redis_url: str, namespace: str,
                                                  pool: asyncpg.Pool, recorder: Recorder, aiohttp_server: Any) -> None:
    upstream = await aiohttp_server(recorder.app())
    prices = {CHAT: {"input": PRICES[CHAT].input, "output": PRICES[CHAT].output}}
    config = write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace,
                          providers=[provider("openai", str(upstream.make_url("/v1")), [CHAT]) | {"prices": prices}],
                          metering={"flush_seconds": 3600.0}, server={"shutdown_grace_seconds": 30.0})
    body = {"model": f"openai/{CHAT}", "messages": [{"role": "user", "content": "hi"}]}
    async with serving(config) as proc, aiohttp.ClientSession() as session, asyncio.timeout(GUARD):
        key, key_id = await issue(session, proc.admin_url("").rstrip("/"))
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(5):
            async with session.post(proc.url("/v1/chat/completions"), json=body, headers=auth) as r:
                assert r.status == 200
        recorder.mode = "hold"
        async with session.post(proc.url("/v1/chat/completions"), json=body | {"stream": True}, headers=auth) as r:
            await recorder.holding.wait()
            proc.proc.send_signal(signal.SIGTERM)  # mid-stream, nothing written to Postgres yet
            assert await pool.fetchval("SELECT count(*) FROM usage_hourly") == 0
            recorder.release.set()
            assert (await r.read()).endswith(b"data: [DONE]\n\n")
        while proc.proc.poll() is None:
            await asyncio.sleep(0.05)
    row = await pool.fetchrow("SELECT requests, unmetered_requests, input_tokens, output_tokens, usd"
                              " FROM usage_hourly WHERE key_id = $1", key_id)
    assert tuple(row) == (6, 0, 6 * 19, 6 * 3, Decimal("0.0000279"))  # 6 × (19 × 0.15 + 3 × 0.60) / 1e6
    lines = [orjson.loads(line) for line in proc.log().splitlines() if '"tokenhub.access"' in line]
    assert [ln["input_tokens"] for ln in lines if "/v1/" in ln["message"]] == [19] * 6
