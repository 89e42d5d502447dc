"""Load scenarios: non-streaming throughput and latency, streaming TTFB, direct vs relay vs proxy.

Targets alternate inside every round (the order rotates round by round) and each figure is the median
over rounds, so a burst of noise on the machine hits all targets rather than one.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from . import http, procs
from .context import Bench, chat_body
from .procs import BenchError
from .report import Table
from .stack import python
from .stats import median, ratio
from .wrk import render_script, run_wrk

TARGETS = ("direct", "relay", "proxy")
VERIFIES = "tokenhub_argon2_verifications_total"


@dataclass(frozen=True, slots=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    target_cpu: float  # % of one core
    load_cpu: float  # the load generator
    fake_cpu: float  # the fake provider (when it is not itself the target)
    errors: int


def rotations(items: Sequence[str], rounds: int) -> list[list[str]]:
    """The order of targets in each round: rotated by one every round."""
    return [list(items[r % len(items):]) + list(items[:r % len(items)]) for r in range(rounds)]


def _moved_fake(bench: Bench, target: str) -> bool:
    """Measured directly, the fake runs on the target core like any other target; otherwise it sits
    with the load generator."""
    if target == "direct":
        procs.set_cores(bench.fake.pid, bench.layout.target_cores)
        return True
    return False


def measure_wrk(bench: Bench, target: str, connections: int, script: str, seconds: float) -> Sample:
    moved = _moved_fake(bench, target)
    try:
        return measure_at(bench, bench.url(target), bench.pid(target), connections, script, seconds)
    finally:
        if moved:
            procs.set_cores(bench.fake.pid, bench.layout.load_cores)


def measure_at(bench: Bench, url: str, pid: int, connections: int, script: str, seconds: float) -> Sample:
    """wrk against `url` from the load core; the CPU of process `pid` (the target) and of the fake."""
    with procs.cpu_meter({"target": pid, "fake": bench.fake.pid}) as cpu:
        result = run_wrk(url, script, connections=connections, seconds=seconds, cores=bench.layout.load_cores)
    fake_cpu = 0.0 if pid == bench.fake.pid else cpu["fake"]
    return Sample(result.rps, result.p50_ms, result.p99_ms, cpu["target"], result.wrk_cpu_pct, fake_cpu,
                  result.errors)


def script_for(bench: Bench, target: str, body: str) -> str:
    """The wrk script for `target`: the proxy gets the governed (limited) key when there is one."""
    key = bench.proxy_key if target == "proxy" else bench.key
    return render_script(body=body, keys=[key.full])


def run_rounds(bench: Bench, measure: Callable[[str], Sample],
               targets: Sequence[str] = TARGETS) -> dict[str, Sample]:
    """Every target once per round, in rotating order; the median of each field per target."""
    samples: dict[str, list[Sample]] = {t: [] for t in targets}
    for order in rotations(targets, bench.options.rounds):
        for target in order:
            samples[target].append(measure(target))
    return {t: median_sample(s) for t, s in samples.items()}


def median_sample(samples: list[Sample]) -> Sample:
    def mid(name: str) -> float:
        return median([getattr(s, name) for s in samples])

    return Sample(mid("rps"), mid("p50_ms"), mid("p99_ms"), mid("target_cpu"), mid("load_cpu"),
                  mid("fake_cpu"), errors=sum(s.errors for s in samples))


def _measure_chat(bench: Bench, connections: int, target: str) -> Sample:
    script = script_for(bench, target, chat_body())
    return measure_wrk(bench, target, connections, script, bench.options.seconds)


CHAT_COLUMNS = ("clients", "target", "req/s", "p50 ms", "p99 ms", "target CPU %", "req/s per core",
                "wrk CPU %", "fake CPU %", "errors")


def throughput(bench: Bench, connections: Sequence[int] = (1, 16, 64)) -> Table:
    table = Table("Non-streaming chat completions (wrk, keep-alive)", CHAT_COLUMNS)
    for target in TARGETS:  # warm-up: connections, caches, the key
        measure_wrk(bench, target, 16, script_for(bench, target, chat_body()), 1)
    verifies, started = http.read_metric(bench.proxy.admin, VERIFIES), time.monotonic()
    for conns in connections:
        for target, s in run_rounds(bench, partial(_measure_chat, bench, conns)).items():
            per_core = ratio(s.rps, s.target_cpu / 100)
            table.add(conns, target, s.rps, s.p50_ms, s.p99_ms, s.target_cpu, per_core, s.load_cpu,
                      s.fake_cpu, s.errors)
            bench.measured |= {f"{target}.c{conns}.rps": s.rps, f"{target}.c{conns}.p50": s.p50_ms,
                               f"{target}.c{conns}.p99": s.p99_ms, f"{target}.c{conns}.per_core": per_core}
    verifies = http.read_metric(bench.proxy.admin, VERIFIES) - verifies
    minutes = (time.monotonic() - started) / 60
    bench.measured["warm.reverifies_per_min"] = verifies / minutes
    table.notes.append("req/s per core = req/s ÷ (target CPU % / 100): throughput per core the target "
                       "actually used; the target is pinned to one core.")
    cost = {t: 1e6 / bench.measured.get(f"{t}.c64.per_core", float("nan")) for t in ("relay", "proxy")}
    table.notes.append(f"CPU per request at 64 clients: proxy {cost['proxy']:.0f} µs, bare relay "
                       f"{cost['relay']:.0f} µs (1 / req/s per core).")
    table.notes.append(f"argon2 verifications by the proxy while it served one already-warm key for "
                       f"{minutes:.1f} min: {verifies:.0f} (a warm key should cost none).")
    table.notes.append(added_latency(bench.measured))
    limited = bench.limited
    key = f"a limited key ({limited.id})" if limited else f"an unlimited key ({bench.limited_note})"
    table.notes.append(f"proxy: the governed path, {key}, metering as shipped, metrics and JSON logs on; "
                       "relay: bare aiohttp on uvloop, dict auth, nothing else.")
    return table


def added_latency(m: dict[str, float]) -> str:
    """Added latency at 1 client over direct (what public gateway benchmarks report), p50 / p99."""
    def added(target: str, p: str) -> float:
        return m.get(f"{target}.c1.{p}", math.nan) - m.get(f"direct.c1.{p}", math.nan)

    parts = [f"{t} {added(t, 'p50'):+.3f} / {added(t, 'p99'):+.3f} ms" for t in ("relay", "proxy")]
    return "Added latency at 1 client over direct (p50 / p99): " + ", ".join(parts) + "."


def _run_stream_client(bench: Bench, target: str, streams: int, chunks: int | None) -> tuple[str, float]:
    """Run the streaming client on the load core; (its output, its CPU as % of one core)."""
    key = bench.proxy_key if target == "proxy" else bench.key
    body = chat_body(stream=True, delay_ms=bench.options.stream_delay_ms, chunks=chunks)
    argv = [python(), "-m", "bench.streamclient", "--url", bench.url(target), "--streams", str(streams),
            "--seconds", str(bench.options.seconds), "--key", key.full, "--body", body]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(procs.pinned(argv, bench.layout.load_cores), capture_output=True, text=True,
                          timeout=bench.options.seconds + 60, cwd=procs.ROOT, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client is the only child reaped meanwhile
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if done.returncode != 0:
        raise BenchError(f"stream client failed: {done.stdout[-1000:]}{done.stderr[-2000:]}")
    return done.stdout, 100 * used / bench.options.seconds


def measure_streams(bench: Bench, target: str, streams: int, chunks: int | None = None) -> dict[str, float]:
    """One streaming-client run against `target`: its figures plus the target's and the client's CPU."""
    moved = _moved_fake(bench, target)
    try:
        with procs.cpu_meter({"target": bench.pid(target)}) as cpu:
            output, client_cpu = _run_stream_client(bench, target, streams, chunks)
    finally:
        if moved:
            procs.set_cores(bench.fake.pid, bench.layout.load_cores)
    line = next((ln for ln in output.splitlines() if ln.startswith("STREAMJSON ")), None)
    if line is None:
        raise BenchError(f"stream client printed no result: {output[-1000:]}")
    figures: dict[str, float] = json.loads(line.removeprefix("STREAMJSON "))
    return figures | {"target_cpu": cpu["target"], "client_cpu": client_cpu}


STREAM_FIELDS = ("ttfb_p50_ms", "ttfb_p99_ms", "total_p50_ms", "total_p99_ms", "streams_per_s", "chunks_p50",
                 "target_cpu", "client_cpu")
STREAM_COLUMNS = ("streams", "target", "TTFB p50 ms", "TTFB p99 ms", "total p50 ms", "total p99 ms",
                  "streams/s", "chunks p50", "target CPU %", "client CPU %", "errors")


def streaming(bench: Bench, counts: Sequence[int] = (1, 16)) -> Table:
    gap = bench.options.stream_delay_ms
    table = Table(f"Streaming chat completions (SSE, 16 events {gap:g} ms apart)", STREAM_COLUMNS)
    for streams in counts:
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
        for order in rotations(TARGETS, bench.options.rounds):
            for target in order:
                runs[target].append(measure_streams(bench, target, streams))
        for target, samples in runs.items():
            m = {f: median([s[f] for s in samples]) for f in STREAM_FIELDS}
            table.add(streams, target, *(m[f] for f in STREAM_FIELDS), sum(int(s["errors"]) for s in samples))
            bench.measured |= {f"{target}.s{streams}.{f}": m[f] for f in STREAM_FIELDS}
    table.notes.append("TTFB: request sent → first body chunk (the first SSE event). chunks p50: HTTP chunks "
                       "the client received per answer (17 when nothing was merged or held back).")
    return table
