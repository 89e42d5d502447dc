"""SPEC §4.1 and issue 2 §2: I/O counted at the drivers, not assumed.

Postgres statements are counted by asyncpg's query logger on every pool connection; Redis commands by
the server itself (MONITOR on the test database). The stores run with their background loops slowed
right down so that the only I/O in the window is what the request path does.
"""

import pytest

from keystore import Actor, MalformedKey, UnknownKey, keygen

from tests.support import RedisMonitor, eventually, forged

QUIET = {"poll_interval_seconds": 3600, "heartbeat_seconds": 3600, "ping_interval_seconds": 3600,
         "last_used_flush_seconds": 3600}


async def quiet_store(make_store):
    """A started store whose background loops have done their first round and now sleep."""
    store = await make_store(**QUIET)
    await eventually(lambda: store.feed_up and store.snapshot().feed.polls and store.snapshot().feed.heartbeats)
    return store


@pytest.fixture
async def monitor(redis_url):
    db = int(redis_url.rsplit("/", 1)[1])
    async with RedisMonitor(redis_url, db) as m:
        yield m


async def test_warm_check_does_no_postgres_no_redis_no_argon2(make_store, queries, monitor) -> None:
    store = await quiet_store(make_store)
    issued = await store.create(Actor("t"), name="warm")
    await store.authenticate(issued.secret)  # cold: loads and verifies
    pg_before, verifies_before = queries.count, store.snapshot().argon2_verifies

    async def warm_checks() -> None:
        for _ in range(100):
            await store.authenticate(issued.secret)

    redis_cmds = await monitor.commands_during(warm_checks, store.settings.namespace)
    assert redis_cmds == []
    assert queries.count == pg_before
    assert store.snapshot().argon2_verifies == verifies_before


async def test_cold_check_is_observed_by_the_same_counters(make_store, queries, monitor) -> None:
    """The counters above can see I/O: a cold check shows up in all three."""
    store = await quiet_store(make_store)
    issued = await store.create(Actor("t"), name="cold")
    pg_before = queries.count
    redis_cmds = await monitor.commands_during(lambda: store.authenticate(issued.secret), store.settings.namespace)
    assert any(c.startswith("GET") for c in redis_cmds), redis_cmds
    assert queries.count > pg_before and store.snapshot().argon2_verifies == 1


@pytest.mark.parametrize("presented", ["", "th-", "th-short", "sk-" + "a" * 51, "th-" + "A" * 51,
                                       "Bearer th-abc", "th-AAAAAAAAAAAA_" + "B" * 38])
async def test_malformed_key_does_no_io_at_all(make_store, queries, monitor, presented) -> None:
    store = await quiet_store(make_store)
    pg_before = queries.count

    async def check() -> None:
        with pytest.raises(MalformedKey):
            await store.authenticate(presented)

    assert await monitor.commands_during(check, store.settings.namespace) == []
    assert queries.queries[pg_before:] == [] and store.snapshot().argon2_verifies == 0


async def test_unknown_key_id_is_answered_from_the_negative_cache(make_store, queries) -> None:
    store = await quiet_store(make_store)
    ghost, _, _ = keygen.mint()  # well-formed, valid checksum, never issued
    with pytest.raises(UnknownKey):
        await store.authenticate(ghost)
    pg_after_first = queries.count
    for _ in range(20):
        with pytest.raises(UnknownKey):
            await store.authenticate(ghost)
    assert queries.count == pg_after_first and store.snapshot().argon2_verifies == 0


async def test_a_repeated_wrong_secret_costs_one_argon2(make_store) -> None:
    store = await quiet_store(make_store)
    issued = await store.create(Actor("t"), name="k")
    wrong = forged(issued.secret)  # same id, wrong secret, valid checksum
    for _ in range(5):
        with pytest.raises(UnknownKey):
            await store.authenticate(wrong)
    assert store.snapshot().argon2_verifies == 1
