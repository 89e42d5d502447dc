"""A month's spend that Redis does not have (never counted, or lost with a restart) is seeded from the
Postgres usage rollups that metering writes, never taken as zero."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from redis.asyncio import Redis

from keystore import Actor, UsageDatabase, UsageRow

from proxy.limits.answers import UsageLimitExceeded
from proxy.limits.ctx import month_usage_from
from proxy.limits.scripts import layout
from tests.limits.helpers import limited_key


async def _spent_this_month(pool: asyncpg.Pool, key_id: str, tokens: int, usd: str) -> None:
    now = datetime.now(UTC)
    row = UsageRow(key_id=key_id, hour=now.replace(minute=0, second=0, microsecond=0), model="demo/echo",
                   requests=3, unmetered_requests=0, input_tokens=tokens // 2, cached_input_tokens=0,
                   output_tokens=tokens - tokens // 2, usd=Decimal(usd))
    assert await UsageDatabase(pool).write_batch(uuid.uuid4(), [row])


async def test_a_missing_month_is_seeded_from_the_rollups(make_store, make_limiter, pool: asyncpg.Pool,
                                                          redis: Redis, namespace: str) -> None:
    store = await make_store()
    key_id = (await store.create(Actor("test"), name="m")).key.id
    await _spent_this_month(pool, key_id, 900, "0.75")
    limiter = await make_limiter(month_usage=month_usage_from(UsageDatabase(pool)))
    key = limited_key(key_id, tokens_per_month=1000, usd_per_month=1.0)
    with pytest.raises(UsageLimitExceeded):  # 900 spent + 101 reserved > 1000
        await limiter.reserve(key, None, {"model": "m", "max_tokens": 100}, 4)
    assert await limiter.reserve(key, None, {"model": "m", "max_tokens": 50}, 4) is not None  # 951
    await redis.delete(layout(namespace, key_id).month)  # Redis lost the month (a flush, a new Redis)
    with pytest.raises(UsageLimitExceeded):  # re-seeded at 900 from Postgres, not zero
        await limiter.reserve(key, None, {"model": "m", "max_tokens": 100}, 4)
