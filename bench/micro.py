"""The keystore alone: `KeyStore.authenticate` as the proxy calls it, timed in-process.

Warm key (in-process cache hit), malformed key (checksum), a known-bad secret (negative cache), a cold
key (Redis miss, Postgres read, argon2 on the thread pool) and one bare argon2 verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from keystore import KeyStore, KeystoreError, keygen
from keystore.hashing import Hasher

from .context import Bench
from .keys import issue, malformed, open_store, wrong_secret
from .report import Table
from .stats import median, percentile


async def _per_call_us(call: Callable[[], Awaitable[object]], n: int, batches: int = 5) -> float:
    """Median over `batches` of the mean time of `n` awaited calls, in microseconds."""
    means = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(n):
            try:
                await call()
            except KeystoreError:
                pass
        means.append((time.perf_counter() - started) / n * 1e6)
    return median(means)


async def _cold_ms(store: KeyStore, count: int) -> tuple[list[float], list[float]]:
    """Per fresh key: the whole cold `authenticate`, then a bare argon2 verify of a secret of the same
    shape hashed with the same (shipped) settings, on a hasher of its own."""
    keys = await issue(store, count, prefix="micro-cold")
    hasher = Hasher(store.settings)
    cold, argon = [], []
    try:
        for key in keys:
            started = time.perf_counter()
            await store.authenticate(key.full)
            cold.append((time.perf_counter() - started) * 1000)
            _, secret = keygen.parse(key.full)
            secret_hash = await hasher.hash(secret)
            started = time.perf_counter()
            ok = await hasher.verify(secret_hash, secret)
            argon.append((time.perf_counter() - started) * 1000)
            assert ok, "the bare verification must succeed"
    finally:
        hasher.close()
    return cold, argon


async def _run(bench: Bench, n: int) -> dict[str, float]:
    s = bench.services
    async with open_store(s.dsn, s.redis_url, s.namespace) as store:
        await store.start()
        try:
            [key] = await issue(store, 1, prefix="micro")
            await store.authenticate(key.full)
            bad, garbled = wrong_secret(key.id), malformed(key.full)
            with contextlib.suppress(KeystoreError):
                await store.authenticate(bad)  # the one argon2 verify; the timed calls are the repeats
            out = {
                "warm": await _per_call_us(lambda: store.authenticate(key.full), n),
                "malformed": await _per_call_us(lambda: store.authenticate(garbled), n),
                "wrong": await _per_call_us(lambda: store.authenticate(bad), n // 10),
            }
            cold, argon = await _cold_ms(store, 10 if bench.options.quick else 40)
        finally:
            await store.close()
    return out | {"cold_p50": percentile(cold, 50), "cold_p99": percentile(cold, 99),
                  "argon_p50": percentile(argon, 50), "argon_p99": percentile(argon, 99)}


def micro(bench: Bench) -> Table:
    n = 20_000 if bench.options.quick else 100_000
    out = asyncio.run(_run(bench, n))
    bench.measured |= {"micro.warm_us": out["warm"], "micro.cold_ms": out["cold_p50"],
                       "micro.argon_ms": out["argon_p50"]}
    table = Table("Keystore alone: KeyStore.authenticate in-process (shipped argon2 settings)",
                  ["case", "cost", "how"])
    table.add("warm key (in-process cache hit)", f"{out['warm']:.2f} µs", f"median of 5 × {n:,} calls")
    table.add("malformed key (bad checksum)", f"{out['malformed']:.2f} µs", f"median of 5 × {n:,} calls")
    table.add("wrong secret, already refused once", f"{out['wrong']:.2f} µs",
              f"median of 5 × {n // 10:,} calls (negative cache, then the failure limit)")
    table.add("cold key, p50 / p99", f"{out['cold_p50']:.2f} / {out['cold_p99']:.2f} ms",
              "Redis miss + Postgres read + one argon2 verify")
    table.add("one argon2 verify, p50 / p99", f"{out['argon_p50']:.2f} / {out['argon_p99']:.2f} ms",
              "keystore Hasher.verify on the thread pool (shipped settings)")
    return table
