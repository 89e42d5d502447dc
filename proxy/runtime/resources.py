"""Cleanup contexts: the Postgres pool, the Redis clients and keystore, the upstream HTTP session.

Each is an async generator with exactly one `yield`; aiohttp tears down, in reverse order, only the
contexts that started.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from keystore import KeyStore, StorageUnavailable

from proxy.config import Config
from proxy.state import CLOCK, CONFIG, KEYSTORE, METRICS, UPSTREAM_HTTP

log = logging.getLogger(__name__)


def redis_clients(config: Config) -> tuple[Redis, Redis]:
    """The command/cache client (short timeouts) and the pub/sub client (no read timeout: it is
    PINGed instead, and no silent internal retries: the feed loop resubscribes and flushes itself)."""
    r = config.redis
    main = Redis.from_url(r.url, socket_timeout=r.timeout_seconds, socket_connect_timeout=r.connect_timeout_seconds)
    feed = Redis.from_url(r.url, socket_timeout=None, socket_connect_timeout=r.connect_timeout_seconds,
                          retry=Retry(NoBackoff(), 0))
    return main, feed


async def create_pool(config: Config) -> asyncpg.Pool:
    """A pool that opens lazily: the proxy starts (and serves warm keys) even while Postgres is down."""
    pg = config.postgres
    return await asyncpg.create_pool(
        pg.dsn, min_size=0, max_size=pg.pool_max, timeout=pg.connect_timeout_seconds,
        command_timeout=pg.timeout_seconds, password=pg.password or None,
        max_inactive_connection_lifetime=60,
    )


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = await create_pool(config)
    main, feed = redis_clients(config)
    store = KeyStore(pool, main, config.keystore, pubsub_redis=feed, clock=app.get(CLOCK),
                     db_timeout=config.postgres.timeout_seconds)
    try:
        try:
            await store.db.ping()
        except StorageUnavailable as exc:
            log.warning("postgres not reachable at start (%s); serving what the caches can", exc)
        await store.start()
        app[KEYSTORE] = store
        app[METRICS].bind_keystore(store)
        yield
    finally:
        app[METRICS].bind_keystore(None)
        await store.close()
        await main.aclose()
        await feed.aclose()
        await pool.close()


async def upstream_http_ctx(app: web.Application) -> AsyncIterator[None]:
    up = app[CONFIG].upstream
    connector = aiohttp.TCPConnector(limit=up.max_connections, limit_per_host=up.max_connections_per_host,
                                     ttl_dns_cache=300)
    # No total timeout: a long generation is legitimate. First byte and idle gaps are bounded per
    # request in forward.py; connecting is bounded here.
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=up.connect_timeout_seconds,
                                    sock_read=None)
    session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                    skip_auto_headers=("User-Agent", "Accept-Encoding"))
    app[UPSTREAM_HTTP] = session
    try:
        yield
    finally:
        await session.close()
