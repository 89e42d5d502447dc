"""SPEC §4.5: Redis down, Postgres down. Faults are real: the service sits behind a TCP gate we cut."""

import asyncio

import pytest

from keystore import Actor, RevokedKey, StorageUnavailable, names

from tests.support import TcpGate, eventually, gated_url, open_pool

ADMIN = Actor("ops")


@pytest.fixture
def gated_redis_url(redis_url: str, redis_gate: TcpGate) -> str:
    return gated_url(redis_url, redis_gate)


@pytest.fixture
async def gated_pool(database_url, migrated, pg_gate: TcpGate):
    pool = await open_pool(gated_url(database_url, pg_gate))
    yield pool
    pg_gate.cut()
    pool.terminate()


async def test_redis_down_authenticates_from_postgres_and_revokes_still_land(make_store, redis_gate, gated_redis_url, clock):
    gate, url = redis_gate, gated_redis_url
    admin = await make_store()  # its Redis is fine
    edge = await make_store(redis_url_override=url)  # its Redis goes away
    await eventually(lambda: edge.feed_up)
    warm = await admin.create(ADMIN, name="warm")
    cold = await admin.create(ADMIN, name="cold")
    await edge.authenticate(warm.secret)
    gate.cut()
    await eventually(lambda: not edge.feed_up)
    async with asyncio.timeout(10):  # never hang
        assert (await edge.authenticate(cold.secret)).id == cold.key.id  # straight from Postgres
    await admin.revoke(ADMIN, warm.key.id)  # edge cannot hear this
    clock.advance(edge.settings.stale_bound_seconds + 0.5)
    with pytest.raises(RevokedKey):
        await edge.authenticate(warm.secret)
    gate.restore()
    await eventually(lambda: edge.feed_up)


async def test_redis_down_costs_one_attempt_not_one_per_request(make_store, redis_gate, gated_redis_url, clock):
    gate, url = redis_gate, gated_redis_url
    edge = await make_store(redis_url_override=url, ping_interval_seconds=3600, heartbeat_seconds=3600,
                            resubscribe_delay_seconds=3600)
    keys = [await edge.create(ADMIN, name=f"k{i}") for i in range(5)]
    gate.cut()
    await eventually(lambda: not edge.feed_up)
    attempts = gate.refused
    for k in keys:
        await edge.authenticate(k.secret)
    # After the first failure Redis is skipped for a while: one failed attempt, not five.
    assert edge.snapshot().redis_failures == 1 and gate.refused - attempts <= 1


async def test_postgres_down_keeps_recent_keys_and_refuses_unknown_ones(make_store, pg_gate, gated_pool, clock, redis):
    gate = pg_gate
    edge = await make_store(db_pool=gated_pool, cache_ttl_seconds=5, pg_down_grace_seconds=30)
    await eventually(lambda: edge.feed_up)
    recent = await edge.create(ADMIN, name="recent")
    never_seen = await edge.create(ADMIN, name="never-seen")
    await redis.delete(names.record(edge.settings.namespace, never_seen.key.id))
    await edge.authenticate(recent.secret)
    gate.cut()
    clock.advance(10)  # past the cache TTL: a re-check fails, the grace keeps the key working
    assert (await edge.authenticate(recent.secret)).id == recent.key.id
    with pytest.raises(StorageUnavailable):  # never UnknownKey (401), never a pass
        await edge.authenticate(never_seen.secret)
    clock.advance(30)  # past the grace: only the Redis record (loaded from Postgres within
    assert (await edge.authenticate(recent.secret)).id == recent.key.id  # redis_ttl) vouches for it
    await redis.delete(names.record(edge.settings.namespace, recent.key.id))  # that record expires
    clock.advance(31)  # and the grace since that last confirmation runs out too
    with pytest.raises(StorageUnavailable):
        await edge.authenticate(recent.secret)
    gate.restore()
    async with asyncio.timeout(15):
        while True:  # full service again without a restart
            try:
                await edge.authenticate(never_seen.secret)
                break
            except StorageUnavailable:
                await asyncio.sleep(0.1)
