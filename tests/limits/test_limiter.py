"""The limiter against the real Redis: buckets, reservations and their reconciliation, leases, answers."""

from __future__ import annotations

import asyncio

import pytest

from proxy.limits.answers import MaxTokensExceeded, RateLimitExceeded, UsageLimitExceeded
from proxy.metering.usage import Unmetered
from tests.limits.helpers import limited_key, metered

ASK = {"model": "demo/echo", "max_tokens": 100}  # reserves 100 output tokens + 1 input token (size 4)


async def test_requests_per_minute_admits_the_bucket_then_answers_429(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(requests_per_minute=3)
    tickets = [await limiter.reserve(key, None, ASK, 4) for _ in range(3)]
    assert [t.headers["x-ratelimit-remaining-requests"] for t in tickets] == ["2", "1", "0"]
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(key, None, ASK, 4)
    err = refused.value
    assert (err.status, err.error_type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert int(err.headers["Retry-After"]) >= 1  # whole seconds: one request refills in 20 s
    assert err.headers["x-ratelimit-limit-requests"] == "3"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-ratelimit-limit-tokens" not in err.headers  # only the limits the key has


async def test_tokens_are_reserved_then_reconciled_to_the_metered_figure(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(tokens_per_minute=250)
    first = await limiter.reserve(key, None, ASK, 4)  # reserves 101 of 250
    assert first is not None and first.demand.tokens == 101
    await limiter.reserve(key, None, ASK, 4)  # 202 reserved: 48 left
    with pytest.raises(RateLimitExceeded):
        await limiter.reserve(key, None, ASK, 4)
    limiter.finish(first, metered(1, 9))  # used 10 of its 101: 91 back
    await limiter.settled()
    again = await limiter.reserve(key, None, ASK, 4)
    assert again is not None


async def test_an_abandoned_request_keeps_its_reservation(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(tokens_per_minute=250)
    first = await limiter.reserve(key, None, ASK, 4)
    await limiter.reserve(key, None, ASK, 4)
    limiter.finish(first, metered(1, 0, reason=Unmetered.CLIENT_GONE))  # generated tokens unknown
    await limiter.settled()
    with pytest.raises(RateLimitExceeded):
        await limiter.reserve(key, None, ASK, 4)


async def test_a_request_that_used_more_than_it_reserved_leaves_a_debt(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(tokens_per_minute=1000)
    ticket = await limiter.reserve(key, None, {"model": "m"}, 4)  # no max_tokens: the 1024 estimate, clamped
    limiter.finish(ticket, metered(10, 1990))  # 2000 used: the bucket is ~1000 in debt
    await limiter.settled()
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(key, None, ASK, 4)
    assert int(refused.value.headers["Retry-After"]) > 60  # the debt is waited out, not forgiven


async def test_concurrency_is_leased_and_released(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(max_concurrent_requests=2)
    first = await limiter.reserve(key, None, ASK, 4)
    await limiter.reserve(key, None, ASK, 4)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve(key, None, ASK, 4)
    assert refused.value.headers["Retry-After"] == "1"
    limiter.finish(first, metered(1, 1))
    await limiter.settled()
    assert await limiter.reserve(key, None, ASK, 4) is not None


async def test_an_instance_that_dies_mid_request_leaks_concurrency_only_until_its_lease_ends(make_limiter) -> None:
    dead = await make_limiter(lease_seconds=1)
    alive = await make_limiter(lease_seconds=1)
    key = limited_key(max_concurrent_requests=1)
    await dead.reserve(key, None, ASK, 4)  # never finished, never renewed: the instance is gone
    with pytest.raises(RateLimitExceeded):
        await alive.reserve(key, None, ASK, 4)
    for _ in range(100):  # a hang guard, not a timing assertion: the lease ends by itself
        try:
            assert await alive.reserve(key, None, ASK, 4) is not None
            return
        except RateLimitExceeded:
            await asyncio.sleep(0.1)
    raise AssertionError("the dead instance's lease never ended")


async def test_a_running_request_keeps_its_lease_past_the_lease_time(make_limiter) -> None:
    limiter = await make_limiter(lease_seconds=1)
    other = await make_limiter(lease_seconds=1)
    key = limited_key(max_concurrent_requests=1)
    await limiter.reserve(key, None, ASK, 4)
    for _ in range(5):  # renewals as the maintenance loop does them, well past the first expiry
        await limiter.maintain_once()
        await asyncio.sleep(0.4)
    with pytest.raises(RateLimitExceeded):
        await other.reserve(key, None, ASK, 4)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "max_output_tokens"])
async def test_max_tokens_above_the_keys_cap_is_400_naming_the_field(make_limiter, field) -> None:
    limiter = await make_limiter()
    key = limited_key(max_tokens_per_request=50)
    with pytest.raises(MaxTokensExceeded) as refused:
        await limiter.reserve(key, None, {"model": "m", field: 51}, 4)
    err = refused.value
    assert (err.status, err.error_type, err.code, err.param) == (400, "invalid_request_error",
                                                                 "max_tokens_exceeded", field)
    assert await limiter.reserve(key, None, {"model": "m", field: 50}, 4) is None  # nothing to count


async def test_a_max_tokens_refusal_carries_the_rate_headers_without_taking_a_request(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(requests_per_minute=5, max_tokens_per_request=50)
    with pytest.raises(MaxTokensExceeded) as refused:
        await limiter.reserve(key, None, {"model": "m", "max_tokens": 51}, 4)
    assert refused.value.headers["x-ratelimit-remaining-requests"] == "5"
    ticket = await limiter.reserve(key, None, ASK | {"max_tokens": 50}, 4)
    assert ticket is not None and ticket.headers["x-ratelimit-remaining-requests"] == "4"


async def test_monthly_tokens_refuse_with_402_before_the_budget_is_passed(make_limiter) -> None:
    limiter = await make_limiter()
    key = limited_key(tokens_per_month=250)
    await limiter.reserve(key, None, ASK, 4)
    await limiter.reserve(key, None, ASK, 4)
    with pytest.raises(UsageLimitExceeded) as refused:
        await limiter.reserve(key, None, ASK, 4)  # 202 + 101 > 250
    err = refused.value
    assert (err.status, err.error_type, err.code) == (402, "usage_limit_error", "usage_limit_exceeded")
    assert "Retry-After" not in err.headers


async def test_a_key_without_limits_costs_no_redis_call(make_limiter) -> None:
    limiter = await make_limiter(url="redis://127.0.0.1:1/0")  # nothing listens: any call would fail
    assert await limiter.reserve(limited_key(), None, ASK, 4) is None
    assert limiter.redis_up and limiter.degraded_admissions == 0
    limiter.finish(None, metered(1, 1))

