"""Redis unreachable (a real TCP gate cut in front of the real Redis): each instance enforces its share,
nothing hangs or fails; Redis back: what the fallback admitted is handed back, so no fresh window."""

from __future__ import annotations

import asyncio

import pytest

from proxy.limits.answers import RateLimitExceeded
from tests.limits.helpers import limited_key
from tests.support import TcpGate, gated_url

ASK = {"model": "demo/echo", "max_tokens": 10}


@pytest.fixture
def gate(redis_gate: TcpGate, redis_url: str) -> tuple[TcpGate, str]:
    return redis_gate, gated_url(redis_url, redis_gate)


async def _admitted(limiter, key, n: int) -> int:
    count = 0
    for _ in range(n):
        try:
            await limiter.reserve(key, None, ASK, 4)
            count += 1
        except RateLimitExceeded:
            pass
    return count


async def test_redis_down_each_instance_enforces_its_share_and_back_no_fresh_window(make_limiter, gate) -> None:
    g, url = gate
    key = limited_key(requests_per_minute=30)
    instance = await make_limiter(url=url, fallback_instances=3, retry_redis_seconds=0.2)
    assert await _admitted(instance, key, 5) == 5  # shared: 25 left in Redis
    g.cut()
    assert await _admitted(instance, key, 20) == 10  # its share: 30 / 3, never an error, never a hang
    assert not instance.redis_up
    g.restore()
    while not instance.redis_up:
        await asyncio.sleep(0.05)
    await instance.maintain_once()  # hands the 10 admitted meanwhile back to the shared bucket
    other = await make_limiter()  # another instance, on Redis directly
    assert await _admitted(other, key, 20) <= 15 + 1  # 30 - 5 - 10, plus at most a second's refill


async def test_fail_closed_refuses_limited_keys_with_503_and_fail_open_admits(make_limiter, gate) -> None:
    g, url = gate
    key = limited_key(requests_per_minute=1)
    closed = await make_limiter(url=url, fallback="closed")
    opened = await make_limiter(url=url, fallback="open")
    g.cut()
    with pytest.raises(Exception) as refused:
        await closed.reserve(key, None, ASK, 4)
    assert getattr(refused.value, "status", None) == 503
    assert await _admitted(opened, key, 3) == 3


async def test_a_slow_redis_adds_at_most_each_processs_fallback_share_however_often_it_stalls(make_limiter,
                                                                                             gate) -> None:
    """Redis that stalls (answers nothing for longer than the timeout: a frozen gate) and comes back, three
    times: decisions move between Redis and the fallback, but the fallback's buckets persist across the
    spells, so the fleet-wide overshoot is one fallback share per process (plus refill), not one per spell."""
    g, url = gate
    key = limited_key(requests_per_minute=12)
    instance = await make_limiter(url=url, fallback_instances=2, retry_redis_seconds=0.3)  # share: 6
    loop = asyncio.get_running_loop()
    began = loop.time()
    admitted = await _admitted(instance, key, 14)  # Redis: the whole bucket
    assert admitted == 12
    spells = []
    for _ in range(3):
        g.freeze()  # the next call waits out its timeout (1 s), then the fallback decides
        spells.append(await _admitted(instance, key, 8))
        g.thaw()
        await asyncio.sleep(0.4)  # past retry_redis_seconds: Redis decides again (and gets the carry)
        admitted += spells[-1] + await _admitted(instance, key, 3)
    minutes = (loop.time() - began) / 60
    assert 0 < spells[0] <= 6  # the stall was decided by the fallback, within its share
    assert sum(spells[1:]) <= 1 + 2 * 6 * minutes  # later stalls: the share's refill only, never a fresh share
    assert admitted <= 12 + 6 + (12 + 6) * minutes + 1
