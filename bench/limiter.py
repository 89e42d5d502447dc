"""The limiter alone: `Limiter.reserve` + `finish` (and its settle) in-process against the bench's Redis.

CPU time per request of the governed path's limits, apart from HTTP: the same key limits as the
bench's limited key, a chat body, a metered answer; at 1, 16 and 64 requests in flight (the limiter
batches the Redis calls of one event-loop turn, so concurrency changes the cost).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import uvloop
from redis.asyncio import Redis

from keystore import ApiKey
from keystore.limits import limits_from

from .context import Bench
from .governed import LIMITS
from .report import Table
from .stats import median
from proxy.limits.limiter import Limiter
from proxy.limits.settings import LimitsConfig
from proxy.metering.tap import Metered
from proxy.metering.usage import Usage

BODY = {"model": "bench-model", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


def _key() -> ApiKey:
    return ApiKey(id="benchlimiter0001", name="bench", account="bench", hint="th-…",
                  created_at=datetime.now(UTC), expires_at=None, last_used_at=None, revoked_at=None,
                  allowed_models=(), allowed_providers=(), rotated_from=None, version=1,
                  limits=limits_from(LIMITS))


async def _cpu_per_request(limiter: Limiter, in_flight: int, requests: int) -> float:
    key, metered = _key(), Metered(Usage(input_tokens=5, output_tokens=5), None, None, None)

    async def worker(n: int) -> None:
        for _ in range(n):
            limiter.finish(await limiter.reserve(key, None, BODY, 96), metered)

    started = time.process_time()
    await asyncio.gather(*(worker(requests // in_flight) for _ in range(in_flight)))
    await limiter.settled()
    return 1e6 * (time.process_time() - started) / requests


async def _run(redis_url: str, counts: Sequence[int], rounds: int) -> dict[int, tuple[float, int]]:
    redis = Redis.from_url(redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
    namespace = f"bench-limiter-{uuid.uuid4().hex[:8]}"
    limiter = Limiter(redis, namespace, LimitsConfig(), redis_timeout=0.25)
    out = {}
    try:
        await _cpu_per_request(limiter, 1, 200)  # warm: scripts loaded, connections open
        for n in counts:
            before = limiter.degraded_admissions
            cost = median([await _cpu_per_request(limiter, n, 2000) for _ in range(rounds)])
            out[n] = (cost, limiter.degraded_admissions - before)
    finally:
        await limiter.close()
        keys = [k async for k in redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    return out


def limiter(bench: Bench, counts: Sequence[int] = (1, 16, 64)) -> Table:
    out = uvloop.run(_run(bench.services.redis_url, counts, bench.options.rounds))
    table = Table("The limiter alone: reserve + finish in-process (the limited key's limits, real Redis)",
                  ["requests in flight", "CPU per request µs", "admitted by the fallback (Redis failed)"])
    for n, (cost, degraded) in out.items():
        table.add(n, cost, degraded)
        bench.measured[f"limiter.c{n}.us"] = cost
    table.notes.append("In the bench process (load core): CPU time per request, median of rounds of 2,000 "
                       "requests; both Redis script calls (admit, settle) included.")
    return table
