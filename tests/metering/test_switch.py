"""`[metering] enabled = false` (the benchmark's "metering off"): no tap, nothing asked of the provider,
nothing written; what was stored before stays readable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from keystore import KeystoreSettings
from keystore.usage import UsageRow

from proxy.app import create_admin_app, create_app
from proxy.state import METER
from tests.support.metering import ADMIN_TOKEN, CHAT, Recorder, metering_config


async def test_metering_off(database_url: str, redis_url: str, settings: KeystoreSettings, pool: asyncpg.Pool,
                            recorder: Recorder, aiohttp_server: Any, aiohttp_client: Any) -> None:
    upstream = await aiohttp_server(recorder.app())
    config = metering_config(database_url, redis_url, settings, str(upstream.make_url("/v1")), enabled=False)
    proxy_app = create_app(config)
    proxy = await aiohttp_server(proxy_app)
    admin = await aiohttp_client(create_admin_app(config, proxy_app), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    created = await (await admin.post("/admin/keys", json={"name": "off"})).json()
    body = {"model": f"openai/{CHAT}", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with aiohttp.ClientSession() as session, session.post(
            proxy.make_url("/v1/chat/completions"), json=body,
            headers={"Authorization": f"Bearer {created['key']}"}) as r:
        assert r.status == 200 and (await r.read()) == recorder.sent[-1]
    assert "stream_options" not in recorder.received[-1]
    await proxy_app[METER].flush()
    assert await pool.fetchval("SELECT count(*) FROM usage_hourly") == 0
    earlier = UsageRow(created["id"], datetime.now(UTC).replace(minute=0, second=0, microsecond=0), f"openai/{CHAT}",
                       1, 0, 19, 0, 3, Decimal(0))
    await proxy_app[METER].db.write_batch(uuid.uuid4(), [earlier])  # metered while it was on
    usage = await (await admin.get(f"/admin/keys/{created['id']}/usage")).json()
    assert usage["total"]["requests"] == 1 and usage["total"]["input_tokens"] == 19
