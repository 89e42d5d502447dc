"""Profile the proxy under load with py-spy (sampling, from outside the process) and rank functions."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .context import Bench, chat_body
from .procs import BenchError
from .report import Table
from .wrk import WrkResult, finish_wrk, render_script, run_wrk, start_wrk

RATE = 250  # samples per second
_LINE_NO = re.compile(r":\d+\)$")
# Thread-pool workers waiting for work (inside a C-level queue get) that py-spy does not see as idle.
_IDLE_LEAVES = frozenset({"_worker (concurrent/futures/thread.py)"})
_ENTRY = "(proxy/__main__.py)"  # the command line: every sample of the main thread passes through it
_AREAS = (
    ("aiohttp/web", "aiohttp server"), ("aiohttp/client", "aiohttp client"),
    ("aiohttp/connector", "aiohttp client"),
    ("aiohttp/", "aiohttp (shared)"), ("proxy/", "proxy code"), ("keystore/", "keystore"),
    ("logging/", "logging"), ("prometheus_client/", "metrics"), ("asyncio/", "event loop"),
    ("uvloop/", "event loop"), ("argon2/", "argon2"), ("yarl/", "yarl / multidict"),
    ("multidict/", "yarl / multidict"), ("orjson", "json"), ("json/", "json"),
)


# Where the proxy's time goes by what it does: a sample counts for a concern when a frame of that
# concern's work (never a middleware that merely wraps the rest) is on its stack.
CONCERNS = (
    ("limits (proxy/limits/, their Redis calls)", ("(proxy/limits/",)),
    ("metering (proxy/metering/)", ("(proxy/metering/",)),
    ("key check (keystore)", ("(keystore/", "presented_key (proxy/gateway/auth.py)")),
    ("access log and metrics", ("RequestLog._finish (", "AccessSink.", "(prometheus_client/",
                                "Metrics.observe (")),
    ("provider call (aiohttp client)", ("(aiohttp/client", "(aiohttp/connector.py)")),
    ("Redis client (redis-py, all callers)", ("(redis/",)),
)


@dataclass(frozen=True, slots=True)
class Ranking:
    samples: int
    self_counts: Counter[str]
    total_counts: Counter[str]


def frame_name(frame: str) -> str:
    """`f (aiohttp/web_protocol.py:512)` → `f (aiohttp/web_protocol.py)`: one name per function."""
    return _LINE_NO.sub(")", frame)


def area(name: str) -> str:
    """Which part of the stack a function belongs to, from its file."""
    path = name[name.rfind("(") + 1:]
    for prefix, label in _AREAS:
        if path.startswith(prefix):
            return label
    return "other"


def rank(lines: Iterable[str]) -> Ranking:
    """Collapsed stacks (`a;b;c 12`) → samples per function, as the leaf (self) and anywhere (total)."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames or frames[-1] in _IDLE_LEAVES:
            continue
        samples += n
        self_counts[frames[-1]] += n
        for name in set(frames):
            total_counts[name] += n
    return Ranking(samples, self_counts, total_counts)


def py_spy() -> str:
    path = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(path).exists():
        raise BenchError("py-spy is not installed: pip install -r bench/requirements.txt")
    return path


def record(bench: Bench, out: Path, connections: int = 64) -> tuple[Ranking, WrkResult]:
    """Sample the proxy while wrk drives it with `connections` clients (after a short warm-up)."""
    seconds = bench.options.profile_seconds
    script = render_script(body=chat_body(), keys=[bench.proxy_key.full])  # the governed path
    run_wrk(bench.url("proxy"), script, connections=connections, seconds=1, cores=bench.layout.load_cores)
    load, path = start_wrk(bench.url("proxy"), script, connections=connections, seconds=seconds + 2,
                           cores=bench.layout.load_cores)
    # Blocking mode (the default): py-spy pauses the process for each sample, so every stack is whole.
    argv = [py_spy(), "record", "--pid", str(bench.proxy.proc.pid), "--duration", str(round(seconds)),
            "--rate", str(RATE), "--format", "raw", "--output", str(out)]
    spy = subprocess.run(procs.pinned(argv, bench.layout.load_cores), capture_output=True, text=True,
                         timeout=seconds + 60, check=False)
    result = finish_wrk(load, path, round(seconds + 2))
    if spy.returncode != 0 or not out.exists():
        raise BenchError(f"py-spy failed: {spy.stdout[-1000:]}{spy.stderr[-1000:]}")
    return rank(out.read_text().splitlines()), result


def by_concern(lines: Iterable[str]) -> tuple[int, Counter[str]]:
    """(busy samples, samples per concern of CONCERNS, inclusive: any frame of it on the stack)."""
    counts: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit() or frame_name(stack.rsplit(";", 1)[-1]) in _IDLE_LEAVES:
            continue
        samples += int(count)
        for name, marks in CONCERNS:
            if any(mark in stack for mark in marks):
                counts[name] += int(count)
    return samples, counts


def by_area(ranking: Ranking) -> Counter[str]:
    areas: Counter[str] = Counter()
    for name, n in ranking.self_counts.items():
        areas[area(name)] += n
    return areas


def _concern_note(bench: Bench, out: Path) -> str:
    samples, concerns = by_concern(out.read_text().splitlines())
    shares = {name: 100 * concerns[name] / (samples or 1) for name, _ in CONCERNS}
    bench.measured |= {f"profile.{name.split(' ')[0]}": share for name, share in shares.items()}
    listed = ", ".join(f"{name} {share:.1f}%" for name, share in shares.items())
    return f"Inclusive time by concern: {listed}."


def profile(bench: Bench, top: int = 15) -> Table:
    out = bench.layout.run_dir / "profile.txt"
    ranking, load = record(bench, out)
    total = ranking.samples or 1
    seconds = bench.options.profile_seconds
    table = Table(f"Profile of the proxy under load (py-spy, 64 clients, {seconds:g} s)",
                  ["rank", "top functions by self time", "self %", "our code, inclusive", "total %"])
    selfs = ranking.self_counts.most_common(top)
    ours = [(n, c) for n, c in ranking.total_counts.most_common()
            if area(n) in ("proxy code", "keystore") and not n.endswith(_ENTRY)]
    for i in range(top):
        sname, sn = selfs[i] if i < len(selfs) else ("", 0)
        oname, on = ours[i] if i < len(ours) else ("", 0)
        table.add(i + 1, f"`{sname}`" if sname else "", 100 * sn / total if sname else "",
                  f"`{oname}`" if oname else "", 100 * on / total if oname else "")
    areas = ", ".join(f"{name} {100 * n / total:.1f}%" for name, n in by_area(ranking).most_common())
    busy = 100 * ranking.samples / (RATE * bench.options.profile_seconds)
    table.notes.append(f"Self time by area: {areas}.")
    table.notes.append(_concern_note(bench, out))
    if load.errors:
        table.notes.append(f"**{load.errors} of {load.requests} requests during the profile failed** "
                           "(non-2xx or socket errors): the profile is not of the happy path.")
    table.notes.append(f"{ranking.samples:,} samples at {RATE}/s of non-idle threads (busy ≈{busy:.0f}% "
                       f"of the time); shares are of those samples. Raw collapsed stacks: {out} .")
    return table
