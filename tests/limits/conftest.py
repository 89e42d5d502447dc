"""Fixtures for the limiter: `Limiter`s on the real Redis, in the test's own namespace."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from proxy.limits.limiter import Limiter, MonthUsage
from proxy.limits.metrics import LimitsMetrics
from proxy.limits.settings import LimitsConfig

LimiterFactory = Callable[..., Awaitable[Limiter]]


@pytest.fixture
async def make_limiter(redis_url: str, namespace: str) -> AsyncIterator[LimiterFactory]:
    """Limiters (each like one proxy instance) sharing the test's Redis namespace."""
    opened: list[tuple[Limiter, Redis]] = []

    async def make(*, url: str | None = None, month_usage: MonthUsage | None = None,
                   clock: Callable[[], float] = time.monotonic, metrics: LimitsMetrics | None = None,
                   **config: Any) -> Limiter:
        client = Redis.from_url(url or redis_url, socket_timeout=1, socket_connect_timeout=1)
        limiter = Limiter(client, namespace, LimitsConfig(**config), month_usage=month_usage, redis_timeout=1.0,
                          clock=clock, metrics=metrics)
        opened.append((limiter, client))
        return limiter

    yield make
    for limiter, client in opened:
        await limiter.close()
        await client.aclose()
