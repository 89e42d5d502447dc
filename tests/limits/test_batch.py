"""ScriptBatch: calls of one loop turn share one pipeline; each caller still gets its own script's answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from proxy.limits.batch import ScriptBatch
from tests.limits.helpers import limited_key, metered

INCR = "return redis.call('INCR', KEYS[1])"
FAIL_ON_NEGATIVE = "if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative') end return ARGV[1]"


class CountingRedis(Redis):
    """The real client, counting the pipelines it opens (one per round trip of a batch)."""

    pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
async def client(redis_url: str, redis: Redis) -> Any:
    counting = CountingRedis.from_url(redis_url, socket_timeout=5)
    yield counting
    await counting.aclose()


async def test_calls_of_one_turn_go_in_one_pipeline_in_call_order(client: CountingRedis, namespace: str) -> None:
    batch, script = ScriptBatch(client), client.register_script(INCR)
    replies = await asyncio.gather(*(batch.call(script, [f"{namespace}:n"], []) for _ in range(20)))
    assert replies == list(range(1, 21))  # each script ran atomically, in the order it was called
    assert client.pipelines == 1


async def test_a_lone_call_and_later_turns_are_sent_as_they_come(client: CountingRedis, namespace: str) -> None:
    batch, script = ScriptBatch(client), client.register_script(INCR)
    assert await batch.call(script, [f"{namespace}:n"], []) == 1
    assert await batch.call(script, [f"{namespace}:n"], []) == 2
    assert client.pipelines == 0  # one call alone is an ordinary script call


async def test_each_caller_gets_its_own_error(client: CountingRedis) -> None:
    batch, script = ScriptBatch(client), client.register_script(FAIL_ON_NEGATIVE)
    calls = [batch.call(script, [], [n]) for n in (1, -1, 2)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == b"1" and results[2] == b"2"
    assert isinstance(results[1], ResponseError) and "negative" in str(results[1])


async def test_unknown_scripts_are_loaded_as_a_single_call_would(client: CountingRedis, namespace: str) -> None:
    # A script text of its own (the namespace in a comment): Redis has never seen it, as after a restart.
    batch, script = ScriptBatch(client), client.register_script(f"-- {namespace}\n{INCR}")
    replies = await asyncio.gather(*(batch.call(script, [f"{namespace}:n"], []) for _ in range(3)))
    assert sorted(replies) == [1, 2, 3]


async def test_a_caller_that_gives_up_leaves_the_others_their_answers(client: CountingRedis, namespace: str) -> None:
    batch, script = ScriptBatch(client), client.register_script(INCR)
    first, second = batch.call(script, [f"{namespace}:n"], []), batch.call(script, [f"{namespace}:n"], [])
    first.cancel()
    assert await second == 2  # the abandoned call still ran, as a single call would have
    await batch.settled()


async def test_a_failed_round_trip_fails_every_call_of_the_batch(redis_url: str, namespace: str) -> None:
    client = Redis.from_url(redis_url.rsplit(":", 1)[0] + ":1", socket_connect_timeout=1)  # nobody listens
    batch, script = ScriptBatch(client), client.register_script(INCR)
    results = await asyncio.gather(*(batch.call(script, [f"{namespace}:n"], []) for _ in range(3)),
                                   return_exceptions=True)
    await client.aclose()
    assert all(isinstance(r, Exception) for r in results)


async def test_many_concurrent_admissions_stay_fleet_wide(make_limiter: Any) -> None:
    # redis-py's pool holds at most 100 connections: one script call per request in flight ran out of
    # them at about 100 concurrent requests of limited keys (MaxConnectionsError), and every limited
    # key fell back to per-instance enforcement for retry_redis_seconds. Batched, they share a few.
    limiter = await make_limiter()
    key = limited_key(requests_per_minute=10**6, max_concurrent_requests=10**6)
    tickets = await asyncio.gather(*(limiter.reserve(key, None, {"max_tokens": 1}, 4) for _ in range(300)))
    for ticket in tickets:
        limiter.finish(ticket, metered(1, 1))
    await limiter.settled()
    assert limiter.degraded_admissions == 0 and all(t is not None and t.shared for t in tickets)
