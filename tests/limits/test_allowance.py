"""Allowances (proxy/limits/allowance.py) against the real Redis: a busy key's requests are decided in
process, yet the fleet never admits more than the shared counters allow; what is held ahead of use is
given back (with the next call, on expiry, at shutdown) and never twice; a change of limits ends it."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from proxy.limits.allowance import Allowance
from proxy.limits.answers import Levels, RateLimitExceeded, UsageLimitExceeded
from proxy.limits.demand import Demand
from proxy.limits.limiter import Limiter
from proxy.limits.metrics import LimitsMetrics
from proxy.limits.scripts import layout
from proxy.limits.shared import Grant
from proxy.limits.tickets import Ticket
from tests.limits.helpers import limited_key, metered
from tests.support.clock import FakeClock

ASK = {"model": "demo/echo", "max_tokens": 100}  # reserves 101 tokens (100 out + 1 in for 4 bytes)


def _decided(metrics: LimitsMetrics, by: str) -> int:
    metrics.sync()  # the limiter counts in plain numbers; they reach Prometheus when it is read
    value = REGISTRY_OF[id(metrics)].get_sample_value("tokenhub_limits_decisions_total",
                                                      {"outcome": "admitted", "by": by})
    return int(value or 0)


REGISTRY_OF: dict[int, CollectorRegistry] = {}


def _metrics() -> LimitsMetrics:
    registry = CollectorRegistry()
    metrics = LimitsMetrics(registry)
    REGISTRY_OF[id(metrics)] = registry
    return metrics


async def _month_tokens(redis: Redis, limiter: Limiter, key_id: str) -> int:
    return int(float(await redis.hget(layout(limiter.namespace, key_id).month, "tok") or 0))


async def test_a_busy_keys_requests_are_decided_in_process(make_limiter) -> None:
    metrics = _metrics()
    limiter = await make_limiter(metrics=metrics, allowance_requests=16)
    key = limited_key(requests_per_minute=100_000, tokens_per_minute=10**8, tokens_per_month=10**9)
    for _ in range(100):
        ticket = await limiter.reserve(key, None, ASK, 4)
        await asyncio.sleep(0)  # the request runs: other tasks (the top-ups) get their turn
        limiter.finish(ticket, metered(1, 9))
    # The first request is decided in Redis with an allowance on top; every later one from allowances,
    # topped up in the background (1, 2, 4, 8, 16, 16, … requests) before they run out, or waited for.
    assert (_decided(metrics, "redis"), _decided(metrics, "allowance")) == (1, 99)


async def test_what_redis_counts_is_what_was_used_once_the_allowance_is_back(make_limiter, redis: Redis) -> None:
    limiter = await make_limiter(allowance_requests=8)
    key = limited_key(tokens_per_month=10**6, usd_per_month=100.0)
    for i in range(30):
        ticket = await limiter.reserve(key, None, ASK, 4)
        limiter.finish(ticket, metered(1, i))  # 1 + i used of the 101 reserved
    await limiter.settled()
    held = limiter._allow.get(key.id)
    assert held is not None
    # Redis counts the allowance as spent the moment it is granted: what was used plus what is held.
    used = sum(1 + i for i in range(30))
    assert await _month_tokens(redis, limiter, key.id) == used + held.month_tokens
    await limiter.give_back()
    assert await _month_tokens(redis, limiter, key.id) == used
    await limiter.give_back()  # nothing is given back twice
    assert await _month_tokens(redis, limiter, key.id) == used


@pytest.mark.parametrize(("rpm", "month"), [(200, 10**6), (10**5, 15_000)], ids=["rpm-binds", "month-binds"])
async def test_instances_with_allowances_never_admit_more_than_the_shared_counters(make_limiter, rpm: int,
                                                                                  month: int) -> None:
    limiters = [await make_limiter(allowance_requests=64) for _ in range(3)]
    key = limited_key(requests_per_minute=rpm, tokens_per_month=month)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for limiter in limiters:  # one request each first: the month is seeded once, not by 200 at a time
        await limiter.reserve(key, None, ASK, 4)

    async def one(i: int) -> Ticket | None:
        try:
            return await limiters[i % 3].reserve(key, None, ASK, 4)
        except (RateLimitExceeded, UsageLimitExceeded):
            return None

    admitted = [t for t in await asyncio.gather(*(one(i) for i in range(600))) if t is not None]
    elapsed = loop.time() - began
    assert not any(limiter.degraded_admissions for limiter in limiters)  # every decision was shared
    assert 0 < len(admitted) + 3 <= rpm + rpm * elapsed / 60  # the bucket and its refill, never per instance
    assert sum(t.demand.tokens for t in admitted) + 3 * 101 <= month  # reservations never passed the month
    assert len(admitted) + 3 >= min(rpm, month // 101) * 0.5  # and the allowances held did not starve it
    assert any(limiter._allow.get(key.id) for limiter in limiters)  # allowances were in play


async def test_an_allowance_ends_when_it_expires_and_goes_back(make_limiter, redis: Redis) -> None:
    clock = FakeClock()
    limiter = await make_limiter(clock=clock.time, allowance_requests=8, allowance_seconds=1.0)
    key = limited_key(tokens_per_month=10**6)
    for _ in range(4):
        limiter.finish(await limiter.reserve(key, None, ASK, 4), metered(1, 1))
    await limiter.settled()
    assert await _month_tokens(redis, limiter, key.id) > 4 * 2  # an allowance is held in Redis
    clock.advance(1.0)
    await limiter.maintain_once()
    assert limiter._allow.get(key.id) is None
    assert await _month_tokens(redis, limiter, key.id) == 4 * 2


async def test_an_expired_allowance_is_not_used_even_before_it_is_given_back(make_limiter) -> None:
    clock = FakeClock()
    metrics = _metrics()
    limiter = await make_limiter(clock=clock.time, metrics=metrics, allowance_requests=8)
    key = limited_key(requests_per_minute=10_000)
    await limiter.reserve(key, None, ASK, 4)
    await limiter.reserve(key, None, ASK, 4)
    assert _decided(metrics, "allowance") == 1
    clock.advance(1.0)
    await limiter.reserve(key, None, ASK, 4)
    assert _decided(metrics, "allowance") == 1 and _decided(metrics, "redis") == 2


async def test_a_change_of_limits_ends_the_allowance_at_the_next_request(make_limiter) -> None:
    limiters = [await make_limiter(allowance_requests=64) for _ in range(2)]
    wide = limited_key(requests_per_minute=1000)
    for limiter in limiters:
        for _ in range(11):
            await limiter.reserve(wide, None, ASK, 4)
        await limiter.settled()  # the top-ups are in
        held = limiter._allow.get(wide.id)
        assert held is not None and held.requests > 1  # it could admit more by itself
    narrow = replace(wide, limits=replace(wide.limits, requests_per_minute=1))  # the PATCH, as the cache sees it
    admitted = 0
    for limiter in limiters:  # decided in Redis: the bucket is capped at 1; what was held is not given to it
        for _ in range(3):
            try:
                admitted += await limiter.reserve(narrow, None, ASK, 4) is not None
            except RateLimitExceeded:
                pass
    assert admitted == 1


async def test_held_concurrency_slots_count_fleet_wide_and_are_freed(make_limiter, redis: Redis) -> None:
    clock = FakeClock()
    a = await make_limiter(clock=clock.time, allowance_requests=64)
    b = await make_limiter(allowance_requests=64)
    key = limited_key(max_concurrent_requests=40)
    running = [await a.reserve(key, None, ASK, 4) for _ in range(20)]
    for ticket in running:
        a.finish(ticket, metered(1, 1))
    await a.settled()
    free_in_a = len(a._allow.held(key.id))
    assert free_in_a > 0  # the slots stay a's, free for its next requests, without a call to Redis
    conc = layout(a.namespace, key.id).conc
    assert await redis.zcard(conc) == free_in_a
    taken = 0
    with pytest.raises(RateLimitExceeded):
        for _ in range(40):
            await b.reserve(key, None, ASK, 4)
            taken += 1
    await b.settled()
    free_in_b = len(b._allow.held(key.id))
    assert taken + free_in_b + free_in_a == 40 == await redis.zcard(conc)  # never more than 40 in all
    clock.advance(1.0)
    await a.maintain_once()  # a's allowance expired: its slots are freed in Redis
    assert await redis.zcard(conc) == taken + free_in_b
    assert await b.reserve(key, None, ASK, 4) is not None


async def test_a_refund_stays_in_the_allowance_and_a_large_debt_goes_to_redis(make_limiter, redis: Redis) -> None:
    limiter = await make_limiter(allowance_requests=8)
    key = limited_key(tokens_per_month=10**6)
    for _ in range(3):
        limiter.finish(await limiter.reserve(key, None, ASK, 4), metered(1, 0))
    ticket = await limiter.reserve(key, None, ASK, 4)
    held = limiter._allow.get(key.id)
    assert held is not None
    before = await _month_tokens(redis, limiter, key.id)
    limiter.finish(ticket, metered(1, 100 + int(held.month_tokens) + 5000))  # far more than reserved and held
    await limiter.settled()
    assert await _month_tokens(redis, limiter, key.id) == before + int(held.month_tokens) + 5000
    await limiter.give_back()
    assert await _month_tokens(redis, limiter, key.id) == 3 * 1 + 1 + 100 + 5000 + int(held.month_tokens)


def test_an_allowance_serves_only_its_own_limits_month_and_time() -> None:
    key = limited_key(requests_per_minute=100, tokens_per_minute=1000, max_concurrent_requests=5)
    assert key.limits is not None
    allow = Allowance.granted(key.limits, 202611, expires=10.0, block=4, grant=Grant(4, 404, 0, 0, 1),
                              levels=Levels())
    allow.slots = ["s:1"]
    demand = Demand(tokens=101, micro_usd=0, price=None)
    assert allow.covers(demand, key.limits, 202611, now=9.9)
    assert not allow.covers(demand, key.limits, 202612, now=9.9)  # another month
    assert not allow.covers(demand, key.limits, 202611, now=10.0)  # expired
    assert not allow.covers(demand, replace(key.limits, requests_per_minute=99), 202611, now=9.9)
    assert allow.take(demand) == "s:1"
    assert not allow.covers(demand, key.limits, 202611, now=9.9)  # no free slot left
    assert allow.month_tokens == float("inf")  # the key has no monthly limit: unlimited here


async def test_free_slots_beyond_twice_the_running_requests_are_freed(make_limiter, redis: Redis) -> None:
    limiter = await make_limiter(allowance_requests=256)
    key = limited_key(max_concurrent_requests=10_000)
    running = [await limiter.reserve(key, None, ASK, 4) for _ in range(60)]
    await limiter.settled()
    for ticket in running[:58]:  # 2 keep running
        limiter.finish(ticket, metered(1, 1))
    await limiter.settled()
    held = len(limiter._allow.held(key.id))
    assert held > 2 * 3
    await limiter.maintain_once()
    assert len(limiter._allow.held(key.id)) == 2 * 3  # 2 × (the 2 running + 1)
    assert await redis.zcard(layout(limiter.namespace, key.id).conc) == 2 + 2 * 3  # the rest freed in Redis


async def test_one_process_reports_the_exact_remaining_requests_with_allowances(make_limiter) -> None:
    """What a client of one instance reads in x-ratelimit-remaining-requests counts down by one per request,
    whether Redis or the allowance admitted it (what Redis has left plus what the process holds)."""
    limiter = await make_limiter(allowance_requests=64)
    key = limited_key(requests_per_minute=6000)  # refills 100 a second: a step of 0 now and then
    loop = asyncio.get_running_loop()
    began, seen = loop.time(), []
    for _ in range(40):
        ticket = await limiter.reserve(key, None, ASK, 4)
        assert ticket is not None
        seen.append(int(ticket.headers["x-ratelimit-remaining-requests"]))
        await asyncio.sleep(0)  # top-ups run
    refill = 100 * (loop.time() - began)
    assert seen[0] == 5999
    assert all(b - a >= -1 for a, b in itertools.pairwise(seen)), seen  # never down by more than one
    assert 39 - refill - 1 <= seen[0] - seen[-1] <= 39
    assert limiter._allow.get(key.id) is not None  # allowances were in play
