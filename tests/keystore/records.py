"""Reading and writing the keystore's Redis records from outside, as another instance or an attacker would."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from keystore import names
from keystore.cache import RedisCache
from keystore.pg import Database
from keystore.seal import Seal


async def raw_record(redis: Redis, namespace: str, key_id: str) -> bytes | None:
    value: bytes | None = await redis.get(names.record(namespace, key_id))
    return value


def body_of(raw: bytes) -> dict[str, Any]:
    """The JSON body of a `<version>|<mac>|<json>` record."""
    parts: dict[str, Any] = orjson.loads(raw.split(b"|", 2)[2])
    return parts


async def forge(redis: Redis, namespace: str, key_id: str, body: dict[str, Any], mac: bytes = b"0" * 64) -> None:
    """Write a record the way someone with Redis write access (but not the fleet secret) could."""
    value = str(body["version"]).encode() + b"|" + mac + b"|" + orjson.dumps(body)
    await redis.set(names.record(namespace, key_id), value)


async def fleet_cache(pool: asyncpg.Pool, redis: Redis, namespace: str, *, now: Any) -> RedisCache:
    """A record cache holding the fleet secret, as an instance has it (for tests of the cache alone)."""
    seal = Seal()
    seal.load(await Database(pool).fleet_secret())
    return RedisCache(redis, namespace=namespace, ttl=300, retry_after=1, timer=now, pg_time=now, seal=seal)
