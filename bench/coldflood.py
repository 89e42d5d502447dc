"""Key-path scenarios under load: many cold keys arriving at once, and a wrong-secret flood on one key id."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from . import http
from .context import Bench, chat_body
from .keys import BenchKey, issue, open_store, wrong_secret
from .load import VERIFIES, rotations
from .procs import BenchError
from .report import Table
from .stats import median, percentile
from .wrk import WrkResult, finish_wrk, render_script, run_wrk, start_wrk

ATTACKER, HOLDER = "127.0.0.2", "127.0.0.3"  # two more clients on this machine (all of 127/8 is loopback)
COLD_COLUMNS = ("keys", "requests", "clients", "p50 ms", "p99 ms", "cold keys/s", "argon2 verifies",
                "verifies per key", "statuses")


async def _first_requests(bench: Bench, keys: list[BenchKey],
                          concurrency: int) -> tuple[list[float], Counter[int]]:
    """Every key's first request twice at the same time, `concurrency` keys at a time."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    async with http.session() as client:

        async def both(key: str) -> None:
            async with gate:
                for status, seconds in await asyncio.gather(*(http.chat(client, bench.proxy.base, key)
                                                              for _ in range(2))):
                    statuses[status] += 1
                    latencies.append(seconds * 1000)

        await asyncio.gather(*(both(k.full) for k in keys))
    return latencies, statuses


async def cold_keys(bench: Bench, concurrency: int = 16) -> Table:
    """Fresh keys' first requests (single-flight must make each key cost one argon2 verification)."""
    s = bench.services
    async with open_store(s.dsn, s.redis_url, s.namespace) as store:
        keys = await issue(store, bench.options.cold_keys, prefix="cold")
    async with http.session() as client:
        before = await http.metric(client, bench.proxy.admin, VERIFIES)
        started = time.perf_counter()
        latencies, statuses = await _first_requests(bench, keys, concurrency)
        elapsed = time.perf_counter() - started
        verifies = await http.metric(client, bench.proxy.admin, VERIFIES) - before
    per_key = verifies / len(keys)
    bench.measured |= {"cold.verifies_per_key": per_key, "cold.p50": percentile(latencies, 50)}
    table = Table("Cold keys: the first requests of fresh keys (argon2 on the request path)", COLD_COLUMNS)
    table.add(len(keys), len(latencies), concurrency, percentile(latencies, 50), percentile(latencies, 99),
              len(keys) / elapsed, int(verifies), per_key, _statuses(statuses))
    table.notes.append("Every key's first request is sent twice at the same time; verifies are read from the "
                       "proxy's own /metrics (tokenhub_argon2_verifications_total).")
    return table


def _statuses(counts: dict[int, int] | Counter[int]) -> str:
    return ", ".join(f"{code}×{n}" for code, n in sorted(counts.items()))


def _good_run(bench: Bench, script: str, flood_script: str | None,
              flood_conns: int) -> tuple[WrkResult, WrkResult | None]:
    """The good traffic for one run, with the flood running around it when `flood_script` is given."""
    seconds = bench.options.seconds
    url, cores = bench.url("proxy"), bench.layout.load_cores
    if flood_script is None:
        return run_wrk(url, script, connections=16, seconds=seconds, cores=cores), None
    flood, path = start_wrk(url, flood_script, connections=flood_conns, seconds=seconds + 2, cores=cores)
    time.sleep(0.5)
    good = run_wrk(url, script, connections=16, seconds=seconds, cores=cores)
    return good, finish_wrk(flood, path, round(seconds + 2))


async def _flood_keys(bench: Bench) -> tuple[BenchKey, BenchKey]:
    """The flood's own good key (warmed: the other scenarios keep theirs out of harm's way) and a
    fresh key for the lockout probe."""
    s = bench.services
    async with open_store(s.dsn, s.redis_url, s.namespace) as store:
        good, fresh = await issue(store, 2, prefix="flood")
    async with http.session() as client:
        status, _ = await http.chat(client, bench.proxy.base, good.full)
    if status != 200:
        raise BenchError(f"the flood's good key got {status} before any flood")
    return good, fresh


async def lockout_probe(bench: Bench, key: BenchKey, wrong: int = 25) -> tuple[int, int]:
    """An attacker (127.0.0.2) sends `wrong` wrong secrets for a key's id; then the rightful holder
    (127.0.0.3) sends the key itself, its first request on this instance. What did each get?"""
    async with http.session(source=ATTACKER) as attacker:
        last_wrong = 0
        for _ in range(wrong):
            last_wrong, _ = await http.chat(attacker, bench.proxy.base, wrong_secret(key.id))
    async with http.session(source=HOLDER) as holder:
        status, _ = await http.chat(holder, bench.proxy.base, key.full)
    return last_wrong, status


def flood(bench: Bench, flood_conns: int = 16) -> Table:
    """Good traffic (16 clients, one good key) with and without a flood of wrong secrets for its key id,
    offered at half the proxy's measured 16-client throughput."""
    good_key, fresh_key = asyncio.run(_flood_keys(bench))
    script = render_script(body=chat_body(), keys=[good_key.full])
    rate = 0.5 * bench.measured.get("proxy.c16.rps", 1000.0)
    delay_ms = max(1, round(flood_conns * 1000 / rate))
    bad = [wrong_secret(good_key.id) for _ in range(2000)]
    flood_script = render_script(body=chat_body(), keys=bad, delay_ms=delay_ms, count_statuses=True)
    runs: dict[str, list[WrkResult]] = {"without": [], "with": []}
    floods: list[WrkResult] = []
    before = http.read_metric(bench.proxy.admin, VERIFIES)
    for order in rotations(("without", "with"), bench.options.rounds):
        for mode in order:
            extra = flood_script if mode == "with" else None
            good, flood_result = _good_run(bench, script, extra, flood_conns)
            runs[mode].append(good)
            floods += [flood_result] if flood_result else []
    verifies = http.read_metric(bench.proxy.admin, VERIFIES) - before
    probe = asyncio.run(lockout_probe(bench, fresh_key))
    bench.measured["flood.lockout_status"] = float(probe[1])
    table = _flood_table(bench, runs, floods, verifies)
    table.notes.append(f"The flood: {flood_conns} wrk connections cycling through {len(bad)} distinct "
                       f"well-formed keys with the good key's id and random secrets, paced at "
                       f"{delay_ms} ms per connection (offered ≈ {flood_conns * 1000 / delay_ms:,.0f} "
                       "req/s).")
    table.notes.append(f"Lockout probe: after 25 wrong secrets for a fresh key's id from {ATTACKER} (the "
                       f"last answered {probe[0]}), the rightful holder's first request from {HOLDER} on "
                       f"the same instance got **{probe[1]}**.")
    return table


def _flood_table(bench: Bench, runs: dict[str, list[WrkResult]], floods: list[WrkResult],
                 verifies: float) -> Table:
    p99 = {m: median([r.p99_ms for r in rs]) for m, rs in runs.items()}
    bench.measured |= {"flood.p99_without": p99["without"], "flood.p99_with": p99["with"]}
    table = Table("Wrong-secret flood on the good key's id (good traffic: 16 clients)",
                  ["good traffic", "req/s", "p50 ms", "p99 ms", "errors", "flood req/s", "flood answers",
                   "argon2 verifies (all flood runs)"])
    codes: dict[int, int] = {}
    for f in floods:
        for code, n in f.statuses.items():
            codes[code] = codes.get(code, 0) + n
    for mode, rs in runs.items():
        flooded = mode == "with"
        table.add(mode + " flood", median([r.rps for r in rs]), median([r.p50_ms for r in rs]), p99[mode],
                  sum(r.errors for r in rs), median([f.rps for f in floods]) if flooded else 0.0,
                  _statuses(codes) if flooded else "", int(verifies) if flooded else "")
    return table
