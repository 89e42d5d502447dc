"""Postgres unreachable: usage waits in memory (bounded, drops counted) and is written once it is back,
exactly once even when a write's answer was lost. Postgres sits behind a TCP gate the test cuts; the
outage is a real cut of a few flush attempts rather than 30 s of wall time (no test waits on a clock)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from keystore import Actor, KeyStore, StorageUnavailable
from keystore.usage import UsageDatabase, UsageRow

from proxy.metering.aggregate import Aggregator
from proxy.metering.usage import Usage
from tests.support import StoreFactory, TcpGate, gated_url

ONE = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=2)


@pytest.fixture
def gate(pg_gate: TcpGate) -> TcpGate:
    return pg_gate


@pytest.fixture
async def gated_db(database_url: str, gate: TcpGate, pool: asyncpg.Pool) -> AsyncIterator[UsageDatabase]:
    gated = await asyncpg.create_pool(gated_url(database_url, gate), min_size=0, max_size=2, timeout=1)
    yield UsageDatabase(gated, timeout=1.0)
    gated.terminate()


async def key_id(make_store: StoreFactory) -> str:
    store: KeyStore = await make_store()
    return (await store.create(Actor("test"), name="outage")).key.id


async def totals(pool: asyncpg.Pool, kid: str) -> Any:
    return await pool.fetchrow("SELECT sum(requests) AS requests, sum(input_tokens) AS input_tokens,"
                               " sum(usd) AS usd FROM usage_hourly WHERE key_id = $1", kid)


async def test_outage_delays_the_write_and_loses_nothing(gated_db: UsageDatabase, gate: TcpGate,
                                                         pool: asyncpg.Pool, make_store: StoreFactory) -> None:
    kid = await key_id(make_store)
    agg = Aggregator(gated_db, max_cells=1000)
    agg.add(kid, "openai/a", 7200.0, ONE, Decimal("0.001"))
    gate.cut()
    for hour in range(3):  # requests keep coming during the outage; every flush attempt fails
        agg.add(kid, "openai/a", 7200.0 + 3600 * hour, ONE, Decimal("0.001"))
        with pytest.raises(StorageUnavailable):
            await agg.flush()
    assert agg.cells == 3 and await totals(pool, kid) == (None, None, None)
    gate.restore()
    assert await agg.flush() == 3 and agg.cells == 0
    assert tuple(await totals(pool, kid)) == (4, 40, Decimal("0.004"))


async def test_a_retried_batch_is_counted_once(pool: asyncpg.Pool, make_store: StoreFactory) -> None:
    kid = await key_id(make_store)
    db = UsageDatabase(pool)
    row = UsageRow(kid, datetime(2030, 1, 1, tzinfo=UTC), "openai/a", 1, 0, 10, 2, 5, Decimal("0.5"))
    batch = uuid.uuid4()
    assert await db.write_batch(batch, [row]) is True
    assert await db.write_batch(batch, [row]) is False  # the answer to the first was "lost"
    assert tuple(await totals(pool, kid)) == (1, 10, Decimal("0.5"))


async def test_full_buffer_drops_and_counts(gated_db: UsageDatabase, gate: TcpGate, pool: asyncpg.Pool,
                                            make_store: StoreFactory) -> None:
    kid = await key_id(make_store)
    dropped: list[Usage] = []
    agg = Aggregator(gated_db, max_cells=2, on_drop=dropped.append)
    gate.cut()
    assert agg.add(kid, "m1", 0.0, ONE, None) and agg.add(kid, "m2", 0.0, ONE, None)
    assert agg.add(kid, "m1", 0.0, ONE, None)  # an existing cell still counts: no new memory
    assert not agg.add(kid, "m3", 0.0, ONE, None)
    assert dropped == [ONE] and (agg.dropped.requests, agg.dropped.tokens) == (1, 15)
    gate.restore()
    await agg.flush()
    assert (await totals(pool, kid))["requests"] == 3


async def test_old_batch_ids_are_pruned(pool: asyncpg.Pool) -> None:
    db = UsageDatabase(pool)
    old, new = uuid.uuid4(), uuid.uuid4()
    await db.write_batch(old, [])
    await db.write_batch(new, [])
    await pool.execute("UPDATE usage_batches SET at = now() - interval '2 days' WHERE id = $1", old)
    await db.prune_batches(86400)
    kept = {r["id"] for r in await pool.fetch("SELECT id FROM usage_batches WHERE id = ANY($1::uuid[])", [old, new])}
    assert kept == {new}


async def test_instances_writing_the_same_cells_at_once_lose_nothing(pool: asyncpg.Pool,
                                                                     make_store: StoreFactory) -> None:
    """Two instances' batches add to the same rows at once: every increment lands (upserts add, never
    overwrite). Deadlock freedom comes from write_batch's sorted row order; this test does not force
    the interleaving that would deadlock without it."""
    kids = [await key_id(make_store) for _ in range(4)]
    instances = [Aggregator(UsageDatabase(pool), max_cells=1000) for _ in range(2)]
    for _ in range(5):
        for n, agg in enumerate(instances):
            for kid in (kids if n == 0 else kids[::-1]):
                for model in ("m1", "m2", "m3"):
                    agg.add(kid, model, 3600.0, ONE, Decimal("0.01"))
        await asyncio.gather(*(agg.flush() for agg in instances))
    row = await pool.fetchrow("SELECT sum(requests) AS r, sum(input_tokens) AS i, sum(usd) AS usd FROM usage_hourly"
                              " WHERE key_id = ANY($1::text[])", kids)
    assert tuple(row) == (5 * 2 * 4 * 3, 5 * 2 * 4 * 3 * 10, Decimal("1.2"))
