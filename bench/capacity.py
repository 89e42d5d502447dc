"""Capacity: memory per cached key, and `--workers 2` against one worker."""

from __future__ import annotations

import asyncio

from . import http, procs
from .context import Bench, chat_body
from .keys import BenchKey, issue, open_store
from .load import rotations
from .procs import BenchError
from .report import Table
from .stack import Proxy, start_proxy
from .stats import median, ratio
from .wrk import render_script, run_wrk

CACHED = "tokenhub_cached_keys"
BASELINE_KEYS = 1000


async def _warm_all(proxy: Proxy, keys: list[BenchKey], concurrency: int = 32) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with http.session() as client:
        async def one(key: BenchKey) -> None:
            async with gate:
                status, _ = await http.chat(client, proxy.base, key.full)
                if status != 200:
                    raise BenchError(f"warming a key got {status}")
        await asyncio.gather(*(one(k) for k in keys))


async def _cached(proxy: Proxy) -> float:
    async with http.session() as client:
        return await http.metric(client, proxy.admin, CACHED)


async def _memory(bench: Bench, proxy: Proxy) -> tuple[list[int], list[float]]:
    s = bench.services
    async with open_store(s.dsn, s.redis_url, s.namespace, cheap=True) as store:
        keys = await issue(store, BASELINE_KEYS + bench.options.memory_keys, prefix="mem", concurrency=16)
    rss, cached = [], []
    for batch in (keys[:BASELINE_KEYS], keys[BASELINE_KEYS:]):
        await _warm_all(proxy, batch)
        await asyncio.sleep(0.5)
        rss.append(procs.rss_bytes(proxy.proc.pid))
        cached.append(await _cached(proxy))
    return rss, cached


def memory(bench: Bench) -> Table:
    """A fresh proxy warms a baseline of keys, then `memory_keys` more; RSS growth per cached key."""
    proxy = start_proxy("proxy-mem", bench.layout, bench.services, bench.fake.port)
    try:
        rss, cached = asyncio.run(_memory(bench, proxy))
    finally:
        procs.stop(proxy.proc)
    grown = cached[1] - cached[0]
    per_key = ratio(rss[1] - rss[0], grown)
    bench.measured |= {"memory.per_10k_mib": per_key * 10_000 / 2**20}
    table = Table("Memory per cached key (in-process cache of verified keys)",
                  ["keys cached (baseline → after)", "RSS MiB (baseline → after)", "bytes per key",
                   "MiB per 10,000 keys"])
    table.add(f"{cached[0]:,.0f} → {cached[1]:,.0f}", f"{rss[0] / 2**20:.1f} → {rss[1] / 2**20:.1f}", per_key,
              per_key * 10_000 / 2**20)
    table.notes.append(f"Keys issued with argon2's cheapest profile so that warming {grown:,.0f} keys takes "
                       "seconds; the cached entry does not depend on the argon2 cost. Cached counts come "
                       "from the proxy's tokenhub_cached_keys gauge, RSS from /proc.")
    return table


def workers(bench: Bench, connections: int = 64) -> Table:
    """`tokenhub serve --workers 2` against one worker, both free to use every core, like the load
    generator and the fake provider (a machine with few cores cannot give each its own)."""
    everything = tuple(sorted(set(bench.layout.target_cores) | set(bench.layout.load_cores)))
    servers = {n: start_proxy(f"proxy-w{n}", bench.layout, bench.services, bench.fake.port, workers=n,
                              cores=everything) for n in (1, 2)}
    script = render_script(body=chat_body(), keys=[bench.proxy_key.full])
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    try:
        for server in servers.values():
            run_wrk(f"{server.base}/v1/chat/completions", script, connections=connections, seconds=2,
                    cores=everything)
        for order in rotations(("1", "2"), bench.options.rounds):
            for n in map(int, order):
                with procs.cpu_meter({"t": servers[n].proc.pid}) as cpu:
                    r = run_wrk(f"{servers[n].base}/v1/chat/completions", script, connections=connections,
                                seconds=bench.options.seconds, cores=everything)
                runs[n].append((r.rps, cpu["t"]))
    finally:
        for server in servers.values():
            procs.stop(server.proc)
    return _workers_table(bench, runs, connections, len(everything))


def _workers_table(bench: Bench, runs: dict[int, list[tuple[float, float]]], connections: int,
                   cores: int) -> Table:
    rps = {n: median([r for r, _ in rs]) for n, rs in runs.items()}
    cpu = {n: median([c for _, c in rs]) for n, rs in runs.items()}
    bench.measured |= {"workers.ratio": ratio(rps[2], rps[1]),
                       "workers.per_core_ratio": ratio(rps[2] / cpu[2], rps[1] / cpu[1])}
    table = Table(f"--workers 2 against one worker ({connections} clients, all {cores} cores shared)",
                  ["workers", "req/s", "proxy CPU %", "req/s per core", "× one worker"])
    for n in (1, 2):
        table.add(n, rps[n], cpu[n], ratio(rps[n], cpu[n] / 100), ratio(rps[n], rps[1]))
    table.notes.append("wrk and the fake provider share the same cores here; proxy CPU % sums all worker "
                       "processes (100 % = one core).")
    return table
