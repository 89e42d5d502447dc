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
from .wrk import start_wrk, finish_wrk, render_script

RATE = 250  # samples per second
_LINE_NO = re.compile(r":\d+\)$")


@dataclass(frozen=True, slots=True)
class Ranking:
    samples: int
    self_counts: Counter[str]
    total_counts: Counter[str]


def frame_name(frame: str) -> str:
    """`handler (/x/site-packages/aiohttp/web_protocol.py:512)` → `handler (aiohttp/web_protocol.py)`."""
    frame = _LINE_NO.sub(")", frame)
    for marker in ("site-packages/", "/lib/python3", str(procs.ROOT) + "/"):
        at = frame.find(marker)
        if at >= 0:
            start = frame.rfind("(", 0, at) + 1
            rest = frame[at + len(marker):]
            if marker == "/lib/python3":
                rest = "stdlib/" + rest.split("/", 1)[-1]
            frame = frame[:start] + rest
    return frame


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
        if not frames:
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


def record(bench: Bench, out: Path, connections: int = 64) -> Ranking:
    """Sample the proxy while wrk drives it with `connections` clients."""
    seconds = bench.options.profile_seconds
    script = render_script(body=chat_body(), keys=[bench.key.full])
    load, path = start_wrk(bench.url("proxy"), script, connections=connections, seconds=seconds + 2,
                           cores=bench.layout.load_cores)
    argv = [py_spy(), "record", "--pid", str(bench.proxy.proc.pid), "--duration", str(round(seconds)),
            "--rate", str(RATE), "--format", "raw", "--output", str(out), "--nonblocking"]
    spy = subprocess.run(procs.pinned(argv, bench.layout.load_cores), capture_output=True, text=True,
                         timeout=seconds + 60)
    finish_wrk(load, path, round(seconds + 2))
    if spy.returncode != 0 or not out.exists():
        raise BenchError(f"py-spy failed: {spy.stdout[-1000:]}{spy.stderr[-1000:]}")
    return rank(out.read_text().splitlines())


def profile(bench: Bench, top: int = 15) -> Table:
    out = bench.layout.run_dir / "profile.txt"
    ranking = record(bench, out)
    busy = 100 * ranking.samples / (RATE * bench.options.profile_seconds)
    table = Table(f"Profile of the proxy under load (py-spy, 64 clients, {bench.options.profile_seconds:g} s)",
                  ["function (self)", "self %", "function (inclusive)", "total %"])
    selfs = ranking.self_counts.most_common(top)
    totals = ranking.total_counts.most_common(top)
    for (sname, sn), (tname, tn) in zip(selfs, totals, strict=False):
        table.add(f"`{sname}`", 100 * sn / ranking.samples, f"`{tname}`", 100 * tn / ranking.samples)
    table.notes.append(f"{ranking.samples:,} samples at {RATE}/s of non-idle threads (the process was busy in "
                       f"≈{busy:.0f}% of samples' time). Shares are of those busy samples. Raw collapsed stacks: "
                       f"{out.name} in the run directory.")
    return table
