"""`python -m bench.fleet`: a fleet on one machine. Eight `tokenhub serve` processes on one Redis and one
Postgres; for each of N keys: warm it on every instance, revoke it through one instance's admin
listener (in turn), then ask every instance back to back until each answers 401.

Reports p50/p99/max of "the revoke call returned → 401 on all eight", of each instance's own time,
of the revoke call's own latency, and how many instances the call reported as confirmed. `--record`
writes the table into bench/README.md between the fleet markers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from . import http, procs
from .keys import BenchKey, create_database, issue, open_store, reset_database
from .procs import BenchError
from .report import Table, code_version, machine, markdown_table
from .stack import Layout, Proxy, Services, new_services, start_fake, start_proxy
from .stack import migrate as run_migrate
from .stats import percentile

README = Path(__file__).with_name("README.md")
START, END = "<!-- bench:fleet:start -->", "<!-- bench:fleet:end -->"
GIVE_UP_S = 10.0
# The shipped defaults, except a 1 s heartbeat so eight instances' presence settles fast at start.
EXTRA = "\n[keystore]\nheartbeat_seconds = 1.0\n"


async def _until_refused(client: aiohttp.ClientSession, base: str, key: str, since: float) -> tuple[float, int]:
    """Requests back to back until one gets 401: (ms from `since` to that answer, requests sent)."""
    sent = 0
    while time.perf_counter() - since < GIVE_UP_S:
        status, _ = await http.chat(client, base, key)
        sent += 1
        if status == 401:
            return (time.perf_counter() - since) * 1000, sent
        if status != 200:
            raise BenchError(f"{base} answered {status} to a key being revoked")
    return math.inf, sent


@dataclass(frozen=True, slots=True)
class Revoke:
    call_ms: float  # the revoke call's own latency
    seen_ms: list[float]  # per instance: the call returned → its 401
    confirmed: int  # instances the call reported as confirmed
    first_try: int  # instances whose very first request after the call was already refused


async def _one(client: aiohttp.ClientSession, fleet: list[Proxy], s: Services, key: BenchKey, via: Proxy) -> Revoke:
    warm = await asyncio.gather(*(http.chat(client, p.base, key.full) for p in fleet))
    if any(status != 200 for status, _ in warm):
        raise BenchError(f"a fresh key was not accepted everywhere: {[st for st, _ in warm]}")
    called = time.perf_counter()
    answer = await http.admin_call(client, via.admin, s.admin_token, "POST", f"/admin/keys/{key.id}/revoke")
    returned = time.perf_counter()
    seen = await asyncio.gather(*(_until_refused(client, p.base, key.full, returned) for p in fleet))
    propagation = answer.get("propagation")
    confirmed = int(propagation.get("confirmed", -1)) if isinstance(propagation, dict) else -1
    return Revoke((returned - called) * 1000, [ms for ms, _ in seen], confirmed,
                  sum(1 for _, sent in seen if sent == 1))


async def _measure(fleet: list[Proxy], s: Services, revokes: int) -> list[Revoke]:
    async with open_store(s.dsn, s.redis_url, s.namespace) as store:
        keys = await issue(store, revokes, prefix="fleet")
    async with http.session(limit=64) as client:
        return [await _one(client, fleet, s, key, fleet[n % len(fleet)]) for n, key in enumerate(keys)]


def _table(out: list[Revoke], instances: int, load_before: str, load_after: str) -> Table:
    table = Table(f"Fleet: {instances} instances, one Redis, one Postgres — revocation",
                  ["measured", "samples", "p50 ms", "p99 ms", "max ms"])
    rows = {f"revoke call returned → 401 on all {instances}": [max(r.seen_ms) for r in out],
            "revoke call returned → 401 on one instance (every instance, every revoke)":
                [ms for r in out for ms in r.seen_ms],
            "the revoke call itself (admin REST: commit, Redis, publish, acks)": [r.call_ms for r in out]}
    for label, v in rows.items():
        table.add(label, len(v), percentile(v, 50), percentile(v, 99), max(v))
    full = sum(1 for r in out if r.confirmed == instances)
    first = sum(r.first_try for r in out)
    table.notes.append(f"The revoke call reported all {instances} instances confirmed in {full} of {len(out)} "
                       f"revokes (its `propagation.confirmed`); the first request sent to an instance after the "
                       f"call returned was already refused in {first} of {len(out) * instances} cases.")
    table.notes.append("Each time includes the round trip of the request that saw the 401; instances are "
                       f"asked back to back, all at once ({instances} pollers share the cores with {instances} "
                       "proxies, Redis and Postgres).")
    table.notes.append(f"Load average before / after: {load_before} / {load_after}.")
    return table


def record(body: str) -> None:
    text = README.read_text()
    block = f"{START}\n{body.rstrip()}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.DOTALL)
    else:
        text = text.rstrip() + f"\n\n## Fleet\n\n{block}\n"
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--revokes", type=int, default=200)
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"))
    p.add_argument("--db", default=os.environ.get("BENCH_DB", "tokenhub_bench_fleet"))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/10"))
    p.add_argument("--record", action="store_true", help="write the table into bench/README.md")
    args = p.parse_args(argv)
    dsn = f"{args.pg.rstrip('/')}/{args.db}"
    asyncio.run(create_database(args.pg, args.db))
    asyncio.run(reset_database(dsn))
    layout = Layout(target_cores=(), load_cores=(), run_dir=Path(tempfile.mkdtemp(prefix="bench-fleet-")))
    services = new_services(dsn, args.redis)
    fake = start_fake(layout)
    fleet: list[Proxy] = []
    try:
        run_migrate(layout, services, fake.port)
        fleet = [start_proxy(f"fleet-{n}", layout, services, fake.port, extra=EXTRA) for n in range(args.instances)]
        time.sleep(3.0)  # every instance has announced itself (heartbeat) before the first revoke
        before = procs.loadavg()
        out = asyncio.run(_measure(fleet, services, args.revokes))
        table = _table(out, args.instances, before, procs.loadavg())
    finally:
        for proxy in fleet:
            procs.stop(proxy.proc)
        procs.stop(fake)
    taken = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = [f"Taken {taken} on {code_version(procs.ROOT)}; logs in {layout.run_dir}.", *machine(), ""]
    body = "\n".join(header) + "\n" + markdown_table(table)
    print(body)
    if args.record:
        record(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
