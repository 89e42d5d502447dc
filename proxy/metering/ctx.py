"""The metering cleanup context: its own small Postgres pool (usage writes never queue behind key
checks), the `Meter`, its flush loop, and the last flush when the app is cleaned up (after the drain).
With `[metering] enabled = false` nothing is metered or written, but the usage already in Postgres can
still be read through the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from keystore import Clock, UsageDatabase

from proxy.metering.aggregate import Aggregator
from proxy.metering.meter import Meter
from proxy.state import CLOCK, CONFIG, METER, METRICS

log = logging.getLogger(__name__)
_POOL_SIZE = 2


async def metering_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pg = config.postgres
    pool = await asyncpg.create_pool(pg.dsn, min_size=0, max_size=_POOL_SIZE, timeout=pg.connect_timeout_seconds,
                                     command_timeout=pg.timeout_seconds, password=pg.password or None,
                                     max_inactive_connection_lifetime=60,
                                     statement_cache_size=0 if pg.pgbouncer else 100)
    db = UsageDatabase(pool, timeout=pg.timeout_seconds)
    aggregator = Aggregator(db, max_cells=config.metering.max_cells)
    meter = Meter(config.metering, aggregator, app[METRICS].usage, config.providers, app.get(CLOCK) or Clock())
    app[METER] = meter  # also when disabled: the admin API still reads what was metered before
    loop = asyncio.create_task(meter.flush_forever()) if config.metering.enabled else None
    try:
        yield
    finally:
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
            await meter.close()
        await pool.close()
