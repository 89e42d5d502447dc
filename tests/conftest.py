"""Shared fixtures: the real Postgres and Redis named by TEST_DATABASE_URL and TEST_REDIS_URL, and TCP
gates in front of them. Fixtures only: helpers live in `tests/support/` (the names re-exported below are
for old imports; import them from `tests.support`)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from keystore import Hooks, KeyStore, KeystoreSettings
from keystore.pg import Database

from tests.support import (
    PG_OPTIONS,
    TABLES,
    FakeClock,
    QueryCounter,
    StoreFactory,
    TcpGate,
    open_pool,
    redis_pair,
)

__all__ = ["PG_OPTIONS", "TABLES", "StoreFactory", "open_pool", "redis_pair"]  # old import paths


def _service_url(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests with `bash deploy/dev.sh test`")
    return value


@pytest.fixture(scope="session")
def database_url() -> str:
    return _service_url("TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _service_url("TEST_REDIS_URL")


@pytest.fixture(scope="session")
def migrated(database_url: str) -> None:
    async def migrate() -> None:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2, **PG_OPTIONS)
        try:
            await Database(pool).migrate()
        finally:
            await pool.close()

    asyncio.run(migrate())


@pytest.fixture
def queries() -> QueryCounter:
    return QueryCounter()


@pytest.fixture
async def pool(database_url: str, migrated: None, queries: QueryCounter) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(database_url, queries)
    await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    queries.queries.clear()
    yield pool
    try:
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()  # a connection still checked out by a task the test abandoned


@pytest.fixture
def namespace() -> str:
    return f"thtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(redis_url: str, namespace: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=5)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def settings(namespace: str) -> KeystoreSettings:
    return KeystoreSettings(
        namespace=namespace, ping_interval_seconds=0.5, resubscribe_delay_seconds=0.1,
        heartbeat_seconds=0.5, poll_interval_seconds=0.2, ack_timeout_seconds=2.0,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pg_gate(database_url: str) -> AsyncIterator[TcpGate]:
    """A TcpGate in front of the test Postgres (connect through `gated_url(database_url, pg_gate)`)."""
    gate = await TcpGate.before(database_url, 5432)
    yield gate
    await gate.close()


@pytest.fixture
async def redis_gate(redis_url: str) -> AsyncIterator[TcpGate]:
    """A TcpGate in front of the test Redis (connect through `gated_url(redis_url, redis_gate)`)."""
    gate = await TcpGate.before(redis_url, 6379)
    yield gate
    await gate.close()


@pytest.fixture
async def make_store(pool: asyncpg.Pool, redis_url: str, settings: KeystoreSettings,
                     clock: FakeClock) -> AsyncIterator[StoreFactory]:
    """Build KeyStore instances (each like one proxy instance) and close them at teardown."""
    opened: list[tuple[KeyStore, list[Redis]]] = []

    async def make(*, start: bool = True, redis_url_override: str | None = None,
                   db_pool: asyncpg.Pool | None = None, hooks: Hooks | None = None,
                   store_clock: FakeClock | None = None, **overrides: Any) -> KeyStore:
        instance_id = uuid.uuid4().hex[:12]
        # The feed connection is named so a test can find it in CLIENT LIST and kill exactly it.
        main, feed = redis_pair(redis_url_override or redis_url, name=f"{settings.namespace}-{instance_id}")
        store = KeyStore(db_pool or pool, main, replace(settings, **overrides), pubsub_redis=feed,
                         clock=store_clock or clock, hooks=hooks, instance_id=instance_id)
        opened.append((store, [main, feed]))
        if start:
            await store.start()
        return store

    yield make
    for store, clients in opened:
        await store.close()
        for c in clients:
            await c.aclose()
