"""Connections to the test Postgres and Redis, made the way the proxy makes them."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from keystore import KeyStore

from proxy.config import PostgresConfig
from proxy.runtime.resources import pool_options
from tests.support.observe import QueryCounter

TABLES = "api_keys, key_changes, audit_log"
# TEST_PGBOUNCER=1: TEST_DATABASE_URL is PgBouncer in transaction mode (tests/fleet/test_pgbouncer.py runs
# the keystore tests so); pools then get the options the proxy uses behind it ([postgres] pgbouncer).
PG_OPTIONS = pool_options(PostgresConfig(pgbouncer=bool(os.environ.get("TEST_PGBOUNCER"))))

StoreFactory = Callable[..., Awaitable[KeyStore]]  # the `make_store` fixture: one KeyStore per "instance"


async def open_pool(url: str, counter: QueryCounter | None = None, **kw: Any) -> asyncpg.Pool:
    """A pool on `url` with the proxy's options; `counter` sees every statement sent."""
    async def init(conn: asyncpg.Connection) -> None:
        if counter is not None:
            conn.add_query_logger(counter)

    return await asyncpg.create_pool(url, min_size=1, max_size=10, init=init, timeout=5, **(PG_OPTIONS | kw))


def redis_pair(url: str, *, timeout: float = 2.0, name: str | None = None) -> tuple[Redis, Redis]:
    """The cache/command client and the pub/sub client (no read timeout, no silent retries).

    Both connections are named (`<name>-main`, `<name>-feed`) so tests can find them in CLIENT LIST.
    """
    feed_name = f"{name}-feed" if name else None
    main = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                          client_name=f"{name}-main" if name else None)
    feed = Redis.from_url(url, socket_timeout=None, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                          client_name=feed_name)
    return main, feed
