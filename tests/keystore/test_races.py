"""SPEC §4.3 and §4.4: no resurrection by a slow cache filler; single flight; bounded argon2 work."""

import asyncio

import pytest

from keystore import Actor, Hooks, RateLimited, RevokedKey, UnknownKey, names
from keystore.pg import Database

from tests.keystore.records import body_of, fleet_cache, raw_record
from tests.support import eventually, forged

ADMIN = Actor("ops")


class PauseAfterDbRead(Hooks):
    """Holds the first loader of `key_id` right after its Postgres read, until released."""

    def __init__(self) -> None:
        self.key_id = ""
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    async def after_db_read(self, key_id: str) -> None:
        if key_id == self.key_id and not self.paused.is_set():
            self.paused.set()
            await self.release.wait()


async def test_a_loader_paused_across_a_revoke_cannot_resurrect_the_key(make_store, redis) -> None:
    hooks = PauseAfterDbRead()
    reader = await make_store(hooks=hooks)
    admin = await make_store()
    await eventually(lambda: reader.feed_up and admin.feed_up and reader.snapshot().feed.heartbeats)
    issued = await admin.create(ADMIN, name="k")
    hooks.key_id = issued.key.id
    loading = asyncio.create_task(reader.authenticate(issued.secret))
    await hooks.paused.wait()  # the reader holds the pre-revoke record, caches still empty
    await admin.revoke(ADMIN, issued.key.id)  # commit, Redis update, publish, reader's ack
    hooks.release.set()
    with pytest.raises(RevokedKey):
        await loading  # it re-read after seeing the eviction: no pre-revoke answer
    # Redis does not hold the old active record; the reader's own cache is checked by the loop below.
    assert body_of(await raw_record(redis, reader.settings.namespace, issued.key.id))["revoked"] is True
    fresh = await make_store()  # a third instance reading only the caches
    for store in (reader, fresh):
        with pytest.raises(RevokedKey):
            await store.authenticate(issued.secret)


async def test_thousand_concurrent_checks_of_one_cold_key_cost_one_read_and_one_verify(
        make_store, queries, redis) -> None:
    store = await make_store(poll_interval_seconds=3600)
    await eventually(lambda: store.snapshot().feed.polls)
    issued = await store.create(ADMIN, name="hot")
    await redis.delete(names.record(store.settings.namespace, issued.key.id))
    before = queries.count
    results = await asyncio.gather(*(store.authenticate(issued.secret) for _ in range(1000)))
    assert {r.id for r in results} == {issued.key.id}
    key_reads = [q for q in queries.queries[before:] if "FROM api_keys WHERE id" in q]
    assert len(key_reads) == 1 and store.snapshot().auth.db_reads == 1
    assert store.snapshot().argon2_verifies == 1


async def test_a_cancelled_first_caller_does_not_fail_the_others(make_store) -> None:
    store = await make_store()
    issued = await store.create(ADMIN, name="k")
    first = asyncio.create_task(store.authenticate(issued.secret))
    others = [asyncio.create_task(store.authenticate(issued.secret)) for _ in range(10)]
    await asyncio.sleep(0)
    first.cancel()
    assert {k.id for k in await asyncio.gather(*others)} == {issued.key.id}


def wrong_secret_for(key: str, i: int) -> str:
    return forged(key, secret=f"{i:032d}")  # a distinct wrong secret per i


async def test_a_flood_of_wrong_secrets_for_one_id_does_not_starve_other_keys(make_store) -> None:
    store = await make_store(failure_threshold=10_000)
    victim = await store.create(ADMIN, name="victim")
    bystander = await store.create(ADMIN, name="bystander")
    flood = [asyncio.create_task(store.authenticate(wrong_secret_for(victim.secret, i))) for i in range(60)]
    await asyncio.sleep(0.01)
    await store.authenticate(bystander.secret)  # must not queue behind the flood
    finished = sum(t.done() for t in flood)
    # The flood verifies one at a time for its key id; without that it would have taken every thread
    # and the bystander would have waited behind ~60 verifications.
    assert finished < 10
    for t in flood:
        t.cancel()
    await asyncio.gather(*flood, return_exceptions=True)


async def test_failed_verifications_for_one_id_are_rate_limited(make_store) -> None:
    store = await make_store(failure_threshold=3)
    victim = await store.create(ADMIN, name="victim")
    for i in range(3):
        with pytest.raises(UnknownKey):
            await store.authenticate(wrong_secret_for(victim.secret, i))
    verifies = store.snapshot().argon2_verifies
    with pytest.raises(RateLimited):
        await store.authenticate(wrong_secret_for(victim.secret, 99))
    assert store.snapshot().argon2_verifies == verifies  # refused before any argon2 work


async def test_rate_limit_spares_an_instance_where_the_real_key_is_warm(make_store) -> None:
    store = await make_store(failure_threshold=3)
    victim = await store.create(ADMIN, name="victim")
    await store.authenticate(victim.secret)  # warm
    for i in range(5):
        with pytest.raises((UnknownKey, RateLimited)):
            await store.authenticate(wrong_secret_for(victim.secret, i))
    assert (await store.authenticate(victim.secret)).id == victim.key.id


async def test_redis_refuses_a_stale_fill_after_a_revoke(make_store, pool, redis, clock) -> None:
    store = await make_store()
    records = await fleet_cache(pool, redis, store.settings.namespace, now=store.time)
    issued = await store.create(ADMIN, name="k")
    stale = await Database(pool).fetch_key(issued.key.id)  # a loader's read, before the revoke
    await store.revoke(ADMIN, issued.key.id)
    assert await records.put(stale) is False
    assert (await records.get(issued.key.id)).key.revoked


async def test_a_loader_older_than_the_fill_bound_never_fills_redis(make_store, clock, redis) -> None:
    class SlowRead(Hooks):
        async def after_db_read(self, key_id: str) -> None:
            clock.advance(11)  # the read "took" longer than fill_max_age_seconds (10)

    store = await make_store(hooks=SlowRead())
    issued = await store.create(ADMIN, name="k")
    await store.authenticate(issued.secret)
    assert await raw_record(redis, store.settings.namespace, issued.key.id) is None
