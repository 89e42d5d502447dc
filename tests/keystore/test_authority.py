"""Issue 12: Postgres is the only authority. Each test is one reproduction from the issue, against real
Postgres and Redis: Redis write access, a replayed record, skewed clocks, a wrong-secret flood and a
rotate racing a revoke must not make any instance more permissive than Postgres."""

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from argon2 import PasswordHasher

from keystore import Actor, Conflict, Hooks, RevokedKey, UnknownKey, keygen, names
from keystore.pg import Database
from keystore.record import ApiKey, StoredKey, to_json
from keystore.seal import Seal

from tests.keystore.records import body_of, forge, raw_record
from tests.keystore.test_races import wrong_secret_for
from tests.keystore.test_revocation import two_live_stores
from tests.support import FakeClock, eventually

ADMIN = Actor("ops")


async def ready_store(make_store, **overrides):
    store = await make_store(**overrides)
    await eventually(lambda: store.feed_up and store.snapshot().floors_ready and store.snapshot().feed.heartbeats)
    return store


async def test_a_forged_record_mints_nothing_and_caches_nothing(make_store, redis) -> None:
    store = await ready_store(make_store)
    full, key_id, secret = keygen.mint()  # a key Postgres has never heard of
    now = datetime.fromtimestamp(store.time(), UTC)
    forged = StoredKey(ApiKey(id=key_id, name="mine", account="evil", hint="th-…", created_at=now, expires_at=None,
                              last_used_at=None, revoked_at=None, allowed_models=(), allowed_providers=(),
                              rotated_from=None, version=7), PasswordHasher().hash(secret), read_at=store.time())
    await forge(redis, store.settings.namespace, key_id, to_json(forged))
    with pytest.raises(UnknownKey):
        await store.authenticate(full)
    snap = store.snapshot()
    assert (snap.cached_keys, snap.argon2_verifies, snap.redis_refused) == (0, 0, 1)
    assert await raw_record(redis, store.settings.namespace, key_id) is None  # the forgery was deleted


async def test_a_revived_record_is_refused_on_every_instance(make_store, redis) -> None:
    a, b = await two_live_stores(make_store)
    await eventually(lambda: a.snapshot().floors_ready and b.snapshot().floors_ready)
    issued = await a.create(ADMIN, name="k", allowed_models=["openai/gpt-4o"])
    for store in (a, b):
        await store.authenticate(issued.secret)
    await a.revoke(ADMIN, issued.key.id)
    raw = await raw_record(redis, a.settings.namespace, issued.key.id)
    body = body_of(raw) | {"revoked": False, "revoked_at": None, "allowed_models": [],
                           "version": body_of(raw)["version"] + 1}
    await forge(redis, a.settings.namespace, issued.key.id, body, mac=raw.split(b"|")[1])  # the old MAC
    c = await ready_store(make_store)  # an instance that never saw the key
    for store in (a, b, c):
        with pytest.raises(RevokedKey):
            await store.authenticate(issued.secret)
    assert body_of(await raw_record(redis, a.settings.namespace, issued.key.id))["revoked"] is True


async def test_a_stale_record_replayed_after_the_floor_window_is_refused(make_store, redis, clock) -> None:
    store = await ready_store(make_store)
    issued = await store.create(ADMIN, name="k")
    await store.authenticate(issued.secret)
    saved = await raw_record(redis, store.settings.namespace, issued.key.id)  # genuine, pre-revoke
    await store.revoke(ADMIN, issued.key.id)
    s = store.settings
    clock.advance(s.redis_ttl_seconds + 2 * s.fill_max_age_seconds + s.cache_ttl_seconds + 1)  # floors forgotten
    await redis.set(names.record(s.namespace, issued.key.id), saved)  # a replica that missed the revoke
    with pytest.raises(RevokedKey):
        await store.authenticate(issued.secret)
    assert store.snapshot().redis_refused == 1


def shifted(seconds: float) -> FakeClock:
    skewed = FakeClock()
    skewed.advance(seconds)
    return skewed


@pytest.mark.parametrize("skew", [-120.0, 120.0])
async def test_a_skewed_instance_refuses_a_revoked_key_at_once_and_is_counted(make_store, skew) -> None:
    a, b = await two_live_stores(make_store, b_overrides={"store_clock": shifted(skew)})
    assert abs(b.snapshot().clock_offset_s + skew) < 5  # it knows how far off it is
    issued = await a.create(ADMIN, name="k")
    await b.authenticate(issued.secret)
    _, propagation = await a.revoke(ADMIN, issued.key.id)
    assert propagation.instances == propagation.confirmed == 2  # the skewed one is counted, truthfully
    with pytest.raises(RevokedKey):
        await b.authenticate(issued.secret)


async def test_a_revoke_through_a_fast_instance_is_in_force_everywhere_at_once(make_store) -> None:
    a, fast = await two_live_stores(make_store, b_overrides={"store_clock": shifted(90)})
    issued = await a.create(ADMIN, name="k")
    await a.authenticate(issued.secret)
    key, _ = await fast.revoke(ADMIN, issued.key.id)
    assert key.status(a.time()) == "revoked"
    assert [k.id for k in (await a.list_keys(status="revoked")).data] == [issued.key.id]
    with pytest.raises(RevokedKey):
        await a.authenticate(issued.secret)


async def test_a_forged_acknowledgement_does_not_count_as_a_confirmation(make_store, redis) -> None:
    a = await ready_store(make_store)
    issued = await a.create(ADMIN, name="k")
    secs, usecs = await redis.time()  # a listed instance that will never answer (scored by Redis' clock)
    await redis.zadd(names.instances(a.settings.namespace), {"ghost": secs + usecs / 1e6})
    listen = redis.pubsub()
    await listen.subscribe(names.revocations(a.settings.namespace))
    task = asyncio.create_task(a.revoke(ADMIN, issued.key.id))
    while (msg := await listen.get_message(timeout=1.0)) is None or msg["type"] != "message":
        pass
    rev = body_of(b"0|" + msg["data"])["rev"]  # the message is `<mac>|<json>`
    await redis.rpush(names.acks(a.settings.namespace, rev), b"0" * 64 + b"|ghost")
    _, propagation = await task
    await listen.aclose()
    assert (propagation.instances, propagation.confirmed) == (2, 1)
    assert a.snapshot().feed.forged == 1


async def test_forty_addresses_with_wrong_secrets_do_not_lock_the_holder_out(make_store) -> None:
    store = await ready_store(make_store)
    holder = await store.create(ADMIN, name="holder")
    flood = [asyncio.create_task(store.authenticate(wrong_secret_for(holder.secret, i), client=f"10.0.0.{i}"))
             for i in range(40)]
    await eventually(lambda: store.snapshot().argon2_verifies >= 1)  # the flood is queued on the key id
    key = await store.authenticate(holder.secret, client="192.0.2.7")  # the holder's first, cold request
    assert key.id == holder.key.id
    results = await asyncio.gather(*flood, return_exceptions=True)
    assert all(isinstance(r, UnknownKey) for r in results)


class PauseBeforeRotateCommit(Hooks):
    def __init__(self) -> None:
        self.paused, self.release = asyncio.Event(), asyncio.Event()

    async def before_rotate_commit(self, key_id: str) -> None:
        self.paused.set()
        await self.release.wait()


async def test_a_revoke_committed_inside_a_rotation_makes_it_a_conflict(make_store) -> None:
    hooks = PauseBeforeRotateCommit()
    store = await make_store(hooks=hooks)
    issued = await store.create(ADMIN, name="k")
    rotating = asyncio.create_task(store.rotate(ADMIN, issued.key.id, grace_seconds=60))
    await hooks.paused.wait()  # the rotation has checked the key and minted its successor
    await store.revoke(ADMIN, issued.key.id)
    hooks.release.set()
    with pytest.raises(Conflict):
        await rotating
    assert [k.id for k in (await store.list_keys()).data] == [issued.key.id]  # no successor at all


async def test_concurrent_rotate_and_revoke_never_give_a_revoked_key_a_later_successor(make_store) -> None:
    store = await make_store()
    for _ in range(8):
        issued = await store.create(ADMIN, name="k")
        rotated, _ = await asyncio.gather(store.rotate(ADMIN, issued.key.id, grace_seconds=60),
                                          store.revoke(ADMIN, issued.key.id), return_exceptions=True)
        actions = [e.action for e in reversed(await store.audit(key_id=issued.key.id))]
        if isinstance(rotated, Conflict):
            assert "key.rotate" not in actions
        else:  # the rotation committed first: the revoke came after it, and is in force
            assert actions.index("key.rotate") < actions.index("key.revoke")


async def test_a_sealed_record_of_another_release_is_read_from_postgres_instead(make_store, pool, redis) -> None:
    store = await ready_store(make_store)
    issued = await store.create(ADMIN, name="k")
    seal = Seal()
    seal.load(await Database(pool).fleet_secret())
    body = orjson.dumps({"id": issued.key.id, "version": 1, "shape": "of a future release"})
    await forge(redis, store.settings.namespace, issued.key.id, orjson.loads(body),
                mac=seal.sign(b"key-record", issued.key.id.encode(), b"1", body))
    assert (await store.authenticate(issued.secret)).id == issued.key.id  # not a 500
    assert store.snapshot().redis_refused == 1
