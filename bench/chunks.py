"""CPU per relayed stream chunk: the slope between streams of few and of many events.

A stream's CPU cost is its request (auth, routing, headers, the provider call) plus its chunks. The
first part differs between the proxy and the relay for reasons the throughput table already shows, so
the cost of one chunk is measured apart from it: the same 16 streams, once with `FEW` and once with
`MANY` events each (same gap between events), and CPU per stream compared. (MANY − FEW) more chunks
cost the difference; dividing gives the CPU of one relayed chunk (read, tap, write).
"""

from __future__ import annotations

from .context import Bench
from .load import measure_streams, rotations
from .report import Table
from .stats import median, ratio

FEW, MANY = 16, 80
STREAMS = 16


def _cpu_per_stream_us(run: dict[str, float]) -> float:
    return 1e6 * (run["target_cpu"] / 100) / run["streams_per_s"] if run["streams_per_s"] else float("nan")


def chunk_cpu(bench: Bench, targets: tuple[str, ...] = ("relay", "proxy")) -> Table:
    runs: dict[tuple[str, int], list[float]] = {(t, n): [] for t in targets for n in (FEW, MANY)}
    for order in rotations(targets, bench.options.rounds):
        for target in order:
            for n in (FEW, MANY):
                runs[(target, n)].append(_cpu_per_stream_us(measure_streams(bench, target, STREAMS, n)))
    table = Table(f"Stream relay CPU per chunk ({STREAMS} streams, {FEW} vs {MANY} events "
                  f"{bench.options.stream_delay_ms:g} ms apart)",
                  ["target", f"CPU per stream, {FEW} events µs", f"CPU per stream, {MANY} events µs",
                   "CPU per chunk µs", "× relay"])
    for target in targets:
        few, many = median(runs[(target, FEW)]), median(runs[(target, MANY)])
        bench.measured[f"{target}.chunk_us"] = (many - few) / (MANY - FEW)
        bench.measured[f"{target}.stream_us"] = few
    for target in targets:
        per_chunk = bench.measured[f"{target}.chunk_us"]
        table.add(target, bench.measured[f"{target}.stream_us"],
                  median(runs[(target, MANY)]), per_chunk, ratio(per_chunk, bench.measured["relay.chunk_us"]))
    key = "the limited key" if bench.limited else "an unlimited key (no limits in the product yet)"
    table.notes.append("CPU per stream = target CPU ÷ streams per second (medians over rounds); CPU per "
                       f"chunk = (CPU per stream with {MANY} events − with {FEW}) ÷ {MANY - FEW}. The proxy "
                       f"is measured with {key}, metering as shipped, metrics and logs on.")
    return table
