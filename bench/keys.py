"""Keys for the benchmark, issued through the same `KeyStore` the proxy uses, into the bench's database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import asyncpg
from redis.asyncio import Redis

from keystore import Actor, KeyStore, KeystoreSettings, keygen, migrate

BENCH_ACTOR = Actor("bench")
TABLES = "api_keys, key_changes, audit_log"
# argon2's smallest profile: for scenarios that need thousands of keys and measure something other
# than argon2 (memory per cached key). Verification reads the cost from each stored hash, so a proxy
# with the shipped settings verifies these cheaply without any change to it.
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


@dataclass(frozen=True, slots=True)
class BenchKey:
    id: str
    full: str  # the whole th-… key, as a client sends it


@asynccontextmanager
async def open_store(dsn: str, redis_url: str, namespace: str, *,
                     cheap: bool = False) -> AsyncIterator[KeyStore]:
    """A KeyStore on the bench database and namespace, for issuing keys (its loops are not started)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8, timeout=10)
    redis = Redis.from_url(redis_url, socket_timeout=5)
    settings = KeystoreSettings(namespace=namespace)
    if cheap:
        settings = replace(settings, **CHEAP_ARGON2)  # type: ignore[arg-type]
    store = KeyStore(pool, redis, settings)
    try:
        yield store
    finally:
        await store.close()
        await redis.aclose()
        await pool.close()


async def reset_database(dsn: str) -> None:
    """Apply the migrations and empty the bench's own tables (keys from earlier runs)."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, timeout=10)
    try:
        await migrate(pool)
        await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    finally:
        await pool.close()


async def create_database(server: str, name: str) -> None:
    """Create database `name` on `server` (a DSN without a database) unless it exists."""
    conn = await asyncpg.connect(server.rstrip("/") + "/postgres", timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


async def issue(store: KeyStore, count: int, *, prefix: str, concurrency: int = 8) -> list[BenchKey]:
    """Create `count` keys named `prefix-N`, a few at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> BenchKey:
        async with gate:
            issued = await store.create(BENCH_ACTOR, name=f"{prefix}-{n}", account="bench")
            return BenchKey(issued.key.id, issued.secret)

    return list(await asyncio.gather(*(one(n) for n in range(count))))


def wrong_secret(key_id: str) -> str:
    """A well-formed key (valid checksum) for a real key id with a random, wrong secret: it passes the
    format check, so only the stores and argon2 can refuse it."""
    _, _, random_secret = keygen.mint()
    body = f"{keygen.PREFIX}{key_id}_{random_secret}"
    return body + keygen.checksum(body)


def malformed(key: str) -> str:
    """The same key with one character of its secret changed: the checksum no longer matches."""
    i = len(keygen.PREFIX) + keygen.ID_LEN + 1
    return key[:i] + ("A" if key[i] != "A" else "B") + key[i + 1:]
