"""SPEC §4.2: revocation reaches every instance at once; pub/sub gaps are covered."""

import pytest
from redis.asyncio import Redis

from keystore import Actor, RevokedKey

from tests.support import eventually

ADMIN = Actor("ops")


async def two_live_stores(make_store, b_overrides=None, **overrides):
    a, b = await make_store(**overrides), await make_store(**(overrides | (b_overrides or {})))
    await eventually(lambda: all(s.feed_up and s.snapshot().feed.heartbeats for s in (a, b)))
    return a, b


async def kill_feed(redis: Redis, store) -> None:
    """CLIENT KILL the store's pub/sub connection from the Redis side (found by its client name)."""
    name = f"{store.settings.namespace}-{store.instance_id}-feed"
    ids = [c["id"] for c in await redis.client_list(_type="pubsub") if c.get("name") == name]
    assert len(ids) == 1
    await redis.client_kill_filter(_id=ids[0])


async def test_revoke_through_one_instance_is_rejected_by_the_other_at_once(make_store) -> None:
    a, b = await two_live_stores(make_store)
    issued = await a.create(ADMIN, name="shared")
    await a.authenticate(issued.secret)
    await b.authenticate(issued.secret)  # warm on both
    verifies = (a.snapshot().argon2_verifies, b.snapshot().argon2_verifies)
    _, propagation = await a.revoke(ADMIN, issued.key.id)
    # No clock movement, no sleep: the call returned only after both instances confirmed eviction.
    assert propagation.confirmed == propagation.instances == 2
    for store in (a, b):
        with pytest.raises(RevokedKey):
            await store.authenticate(issued.secret)
    # The evicted entries are re-read, not re-verified: a revocation costs no argon2 anywhere.
    assert (a.snapshot().argon2_verifies, b.snapshot().argon2_verifies) == verifies


async def test_narrowing_update_reaches_the_other_instance_at_once(make_store) -> None:
    a, b = await two_live_stores(make_store)
    issued = await a.create(ADMIN, name="k", allowed_models=["openai/gpt-4o", "openai/gpt-4o-mini"])
    assert (await b.authenticate(issued.secret)).allows("openai", "openai/gpt-4o")
    _, propagation = await a.update(ADMIN, issued.key.id, allowed_models=["openai/gpt-4o-mini"])
    assert propagation.confirmed == 2
    assert not (await b.authenticate(issued.secret)).allows("openai", "openai/gpt-4o")


async def test_feed_killed_server_side_flushes_and_honours_a_missed_revoke(make_store, redis, clock) -> None:
    # b resubscribes slowly and its backstop is quiet, so only the staleness bound can save it;
    # a does not wait long for b's acknowledgement (which never comes).
    a, b = await two_live_stores(make_store, b_overrides={"resubscribe_delay_seconds": 5.0},
                                 poll_interval_seconds=3600, ack_timeout_seconds=0.2)
    issued = await a.create(ADMIN, name="k")
    await b.authenticate(issued.secret)
    flushes = b.snapshot().feed.flushes
    await kill_feed(redis, b)
    await eventually(lambda: not b.feed_up)
    await a.revoke(ADMIN, issued.key.id)  # published while b is not listening: b misses it
    await b.authenticate(issued.secret)  # within the bound, b may still trust its entry
    clock.advance(b.settings.stale_bound_seconds + 0.5)
    with pytest.raises(RevokedKey):
        await b.authenticate(issued.secret)
    await eventually(lambda: b.feed_up)
    assert b.snapshot().feed.flushes == flushes + 1 and b.snapshot().cached_keys == 0


async def test_resubscription_flushes_the_local_cache(make_store, redis) -> None:
    a, b = await two_live_stores(make_store, resubscribe_delay_seconds=0.1)
    issued = await a.create(ADMIN, name="k")
    await b.authenticate(issued.secret)
    assert b.snapshot().cached_keys == 1
    await kill_feed(redis, b)
    await eventually(lambda: not b.feed_up)
    await eventually(lambda: b.feed_up)
    assert b.snapshot().cached_keys == 0


async def test_a_lost_message_is_caught_by_the_postgres_backstop(make_store, pool) -> None:
    """The message never arrives (published to nobody): the change log still evicts."""
    a, b = await two_live_stores(make_store, poll_interval_seconds=0.1)
    issued = await a.create(ADMIN, name="k")
    await b.authenticate(issued.secret)
    # Revoke through a third store on a different namespace's channel: b's feed never hears of it.
    evictions = b.snapshot().feed.backstop_evictions
    async with pool.acquire() as conn, conn.transaction():  # a revoke whose publish went nowhere
        version = await conn.fetchval("UPDATE api_keys SET revoked = true, revoked_at = now(),"
                                      " version = version + 1 WHERE id = $1 RETURNING version", issued.key.id)
        await conn.execute("INSERT INTO key_changes (key_id, version) VALUES ($1, $2)", issued.key.id, version)
    await eventually(lambda: b.snapshot().feed.backstop_evictions > evictions)
    with pytest.raises(RevokedKey):
        await b.authenticate(issued.secret)


async def test_quiet_subscription_outlives_every_timeout(make_store) -> None:
    """redis-py 8.0.0 dropped listen() after 5 s of silence; ours must stay up and not reconnect."""
    store = await make_store(ping_interval_seconds=0.5)
    await eventually(lambda: store.feed_up)
    flushes = store.snapshot().feed.flushes
    import asyncio
    await asyncio.sleep(6)
    assert store.feed_up and store.snapshot().feed.flushes == flushes
