"""The governed path: a key with limits, metering on and off, each measured against its absence.

- **Limited vs unlimited key** (issue 15): the same proxy, two warm keys, one with every limit set far
  above what the bench can use (the limiter runs on every request and never refuses one).
- **Metering on vs off** (issue 14): a second proxy with `[metering] enabled = false` next to the main
  one (metering on, the shipped default), the same unlimited key on both.

Both skip with the reason when the product under test does not have the feature yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from . import http, procs
from .context import Bench, chat_body
from .keys import BenchKey
from .load import Sample, measure_at, run_rounds
from .procs import BenchError
from .report import Table
from .stack import Proxy, config_has, start_proxy
from .stats import ratio
from .wrk import render_script

# Every limit, each far above what a bench run can use: 10⁹ requests a minute, 10¹¹ tokens a minute, …
LIMITS: dict[str, float] = {
    "requests_per_minute": 10**9, "tokens_per_minute": 10**11, "max_concurrent_requests": 10**5,
    "tokens_per_month": 10**12, "usd_per_month": 10**8, "max_tokens_per_request": 10**5,
}
METERING_OFF = "[metering]\nenabled = false\n"
COLUMNS = ("clients", "{what}", "req/s", "p50 ms", "p99 ms", "target CPU %", "req/s per core", "errors")


async def _create_limited(proxy: Proxy, token: str) -> BenchKey:
    async with http.session() as client:
        body = await http.admin_call(client, proxy.admin, token, "POST", "/admin/keys",
                                     {"name": "bench-limited", "account": "bench", "limits": LIMITS})
    if not body.get("limits"):
        raise BenchError("the admin API accepted the key but shows no `limits` on it")
    return BenchKey(str(body["id"]), str(body["key"]))


def limited_key(proxy: Proxy, token: str) -> tuple[BenchKey | None, str]:
    """A key with every limit (through the admin REST API, as an operator sets them), or why not."""
    try:
        return asyncio.run(_create_limited(proxy, token)), ""
    except BenchError as exc:
        return None, f"the product under test has no per-key limits yet ({str(exc)[:120]}…)"


async def _limit_headers(base: str, key: str) -> dict[str, str]:
    async with http.session() as client, client.post(
            f"{base}/v1/chat/completions", data=http.CHAT_BODY,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as r:
        await r.read()
        return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("x-ratelimit-")}


def _add_rows(table: Table, bench: Bench, conns: int, samples: dict[str, Sample], prefix: str) -> None:
    for name, s in samples.items():
        per_core = ratio(s.rps, s.target_cpu / 100)
        table.add(conns, name, s.rps, s.p50_ms, s.p99_ms, s.target_cpu, per_core, s.errors)
        bench.measured |= {f"{prefix}.{name}.c{conns}.rps": s.rps, f"{prefix}.{name}.c{conns}.p50": s.p50_ms,
                           f"{prefix}.{name}.c{conns}.p99": s.p99_ms,
                           f"{prefix}.{name}.c{conns}.per_core": per_core}


def delta_note(m: dict[str, float], prefix: str, a: str, b: str, conns: int) -> str:
    """`a` against `b` at `conns` clients: the throughput-per-core ratio and the added p50 and p99."""
    def get(name: str, field: str) -> float:
        return m[f"{prefix}.{name}.c{conns}.{field}"]

    m[f"{prefix}.c{conns}.ratio"] = r = ratio(get(a, "per_core"), get(b, "per_core"))
    return (f"{conns} client(s): {a} / {b} throughput per core {r:.2f}×, "
            f"p50 {get(a, 'p50') - get(b, 'p50'):+.3f} ms, p99 {get(a, 'p99') - get(b, 'p99'):+.3f} ms.")


def compare(bench: Bench, table: Table, urls: dict[str, tuple[str, int, str]], prefix: str,
             connections: Sequence[int]) -> None:
    """Alternate the named (url, pid, key) targets round by round at each client count."""
    def one(conns: int, name: str) -> Sample:
        url, pid, key = urls[name]
        script = render_script(body=chat_body(), keys=[key])
        return measure_at(bench, url, pid, conns, script, bench.options.seconds)

    for name in urls:  # warm-up
        one(16, name)
    for conns in connections:
        _add_rows(table, bench, conns, run_rounds(bench, partial(one, conns), tuple(urls)), prefix)


def limits(bench: Bench, connections: Sequence[int] = (1, 16, 64)) -> Table:
    if bench.limited is None:
        raise BenchError(f"limited vs unlimited key: skipped, {bench.limited_note}")
    url, pid = bench.url("proxy"), bench.pid("proxy")
    table = Table("Limited key vs unlimited key (one proxy, metering on)",
                  [c.format(what="key") for c in COLUMNS])
    keys = {"limited": (url, pid, bench.limited.full), "unlimited": (url, pid, bench.key.full)}
    compare(bench, table, keys, "limits", connections)
    table.notes += [delta_note(bench.measured, "limits", "limited", "unlimited", c) for c in connections]
    shown = asyncio.run(_limit_headers(bench.proxy.base, bench.limited.full))
    table.notes.append("The limited key has every limit set, far above the bench's use: "
                       + ", ".join(f"{k} {v:g}" for k, v in LIMITS.items()) + ".")
    carried = ", ".join(f"`{k}: {v}`" for k, v in sorted(shown.items()))
    missing = "**no x-ratelimit headers** (is the limiter on the path?)"
    table.notes.append(f"Its answers carry {carried or missing}.")
    return table


def metering(bench: Bench, connections: Sequence[int] = (1, 64)) -> Table:
    if not config_has("metering", "enabled"):
        raise BenchError("metering on vs off: skipped, the product under test has no `[metering] enabled` "
                         "setting")
    off = start_proxy("proxy-nometer", bench.layout, bench.services, bench.fake.port, extra=METERING_OFF)
    table = Table("Metering on vs off (two proxies on the target core, the unlimited key)",
                  [c.format(what="metering") for c in COLUMNS])
    try:
        both = {"on": (bench.url("proxy"), bench.pid("proxy"), bench.key.full),
                "off": (f"{off.base}/v1/chat/completions", off.proc.pid, bench.key.full)}
        compare(bench, table, both, "metering", connections)
    finally:
        procs.stop(off.proc)
    table.notes += [delta_note(bench.measured, "metering", "on", "off", c) for c in connections]
    table.notes.append("Off: `[metering] enabled = false` (no tap, nothing written); on: the shipped "
                       "default.")
    return table


def warm(bench: Bench, key: BenchKey) -> None:
    """One request with `key`, so its first measured request is not a cold one."""
    async def once() -> int:
        async with http.session() as client:
            status, _ = await http.chat(client, bench.proxy.base, key.full)
            return status

    status = asyncio.run(once())
    if status != 200:
        raise BenchError(f"the limited key's first request got {status}")

