"""The limits cleanup context: the `Limiter` with its own Redis client (its scripts never queue behind
key checks), a lazy Postgres pool for seeding months from the usage rollups, and its maintenance loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from keystore import UsageDatabase

from proxy.limits.answers import add_rate_headers
from proxy.limits.limiter import Limiter, MonthUsage
from proxy.runtime.resources import create_pool, redis_clients
from proxy.state import CONFIG, LIMITER, METRICS


def month_usage_from(usage: UsageDatabase) -> MonthUsage:
    """A key's spend since the start of a month (tokens, micro-USD), read from metering's rollups."""
    async def month_usage(key_id: str, start: datetime) -> tuple[int, int]:
        totals = (await usage.totals_since([key_id], start)).get(key_id)
        if totals is None:
            return 0, 0
        return totals.input_tokens + totals.output_tokens, round(totals.usd * 1_000_000)

    return month_usage


async def limits_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    redis, feed = redis_clients(config)
    pool = await create_pool(config)
    month_usage = month_usage_from(UsageDatabase(pool, timeout=config.postgres.timeout_seconds))
    limiter = Limiter(redis, config.redis.namespace, config.limits, month_usage=month_usage,
                      redis_timeout=config.redis.timeout_seconds, metrics=app[METRICS].limits)
    app[LIMITER] = limiter
    loop = asyncio.create_task(limiter.maintain())
    try:
        yield
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await limiter.close()
        await redis.aclose()
        await feed.aclose()
        await pool.close()


def setup(app: web.Application) -> None:
    """Wire the limiter into the proxy app: its context, and the `x-ratelimit-*` headers on answers."""
    app.cleanup_ctx.append(limits_ctx)
    app.on_response_prepare.append(add_rate_headers)
