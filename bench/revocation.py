"""Revocation latency: from the admin revoke call returning to a 401 on each of three proxy instances."""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp

from . import http, procs
from .context import Bench
from .keys import issue, open_store
from .procs import BenchError
from .report import Table
from .stack import Proxy, start_proxy
from .stats import percentile

GIVE_UP_SECONDS = 5.0


async def _until_refused(client: aiohttp.ClientSession, base: str, key: str,
                         since: float) -> tuple[float, int]:
    """Send requests back to back until one gets 401; (ms from `since` to that answer, requests sent)."""
    sent = 0
    while time.perf_counter() - since < GIVE_UP_SECONDS:
        status, _ = await http.chat(client, base, key)
        sent += 1
        if status == 401:
            return (time.perf_counter() - since) * 1000, sent
        if status != 200:
            raise BenchError(f"{base} answered {status} to a key that was just revoked")
    return math.inf, sent


async def _refused_again(client: aiohttp.ClientSession, instances: list[Proxy], key: str) -> float:
    """One more request per instance once the key is refused everywhere: the slowest answer, in ms."""
    answers = await asyncio.gather(*(http.chat(client, p.base, key) for p in instances))
    if any(status != 401 for status, _ in answers):
        raise BenchError("a revoked key was accepted again")
    return max(seconds for _, seconds in answers) * 1000


async def _warm(client: aiohttp.ClientSession, instances: list[Proxy], key: str) -> None:
    for status, _ in await asyncio.gather(*(http.chat(client, p.base, key) for p in instances)):
        if status != 200:
            raise BenchError(f"a fresh key got {status} before its revocation")


async def _measure(bench: Bench, instances: list[Proxy]) -> dict[str, list[float]]:
    s = bench.services
    async with open_store(s.dsn, s.redis_url, s.namespace) as store:
        keys = await issue(store, bench.options.revokes, prefix="revoke")
    out: dict[str, list[float]] = {"all": [], "call": [], "first_try": [], "again": []}
    out |= {f"i{n}": [] for n in range(len(instances))}
    async with http.session() as client:
        for n, key in enumerate(keys):
            await _warm(client, instances, key.full)
            admin = instances[n % len(instances)].admin  # the revoke lands on each instance in turn
            called = time.perf_counter()
            await http.admin_call(client, admin, s.admin_token, "POST", f"/admin/keys/{key.id}/revoke")
            returned = time.perf_counter()
            seen = await asyncio.gather(*(_until_refused(client, p.base, key.full, returned)
                                          for p in instances))
            out["call"].append((returned - called) * 1000)
            out["all"].append(max(ms for ms, _ in seen))
            out["first_try"].append(float(all(sent == 1 for _, sent in seen)))
            out["again"].append(await _refused_again(client, instances, key.full))
            for i, (ms, _) in enumerate(seen):
                out[f"i{i}"].append(ms)
    return out


def revocation(bench: Bench) -> Table:
    extra = [start_proxy(f"proxy-r{n}", bench.layout, bench.services, bench.fake.port) for n in (2, 3)]
    try:
        out = asyncio.run(_measure(bench, [bench.proxy, *extra]))
    finally:
        for p in extra:
            procs.stop(p.proc)
    bench.measured |= {"revoke.p50": percentile(out["all"], 50), "revoke.p99": percentile(out["all"], 99)}
    table = Table("Revocation: revoke call returned → 401 (three instances, one Redis, one Postgres)",
                  ["measured", "revokes", "p50 ms", "p99 ms", "max ms"])
    labels = {"all": "401 on all three instances", "call": "the revoke call itself (admin REST)"}
    labels |= {f"i{n}": f"401 on instance {n + 1}" for n in range(3)}
    labels["again"] = "a later request with the revoked key (slowest of three)"
    for name, label in labels.items():
        values = out[name]
        table.add(label, len(values), percentile(values, 50), percentile(values, 99), max(values))
    first_try = 100 * sum(out["first_try"]) / len(out["first_try"])
    table.notes.append(f"In {first_try:.1f}% of revokes the very first "
                       "request sent after the call returned was already refused on all three instances; the "
                       "times include that request's own round trip. Revokes go to each instance's admin "
                       "listener in turn.")
    return table
