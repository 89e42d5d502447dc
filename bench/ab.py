"""Before and after one change: two proxies side by side on the target core, measured alternately.

`before` runs the product from a copy of its source taken before the change (e.g. `cp -r proxy keystore
/tmp/before/`), `after` from the working tree; both get the same config, database, key and fake
provider. Only the figures of one run, taken in alternating rounds, are compared, so the noise of a
shared machine lands on both. Run:

    python -m bench.ab --before /tmp/before [--connections 1,16,64] [--rounds 3] [--seconds 4] [--unlimited]

It prints a Markdown table and, per client count, after / before throughput per core and added latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from . import procs
from .__main__ import layout_for, running
from .context import Options
from .governed import compare, delta_note
from .report import Table, markdown_table
from .stack import new_services, start_proxy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="a copy of the source before the change")
    p.add_argument("--connections", default="1,16,64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--unlimited", action="store_true", help="use the key without limits (default: limited)")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"))
    p.add_argument("--db", default=os.environ.get("BENCH_DB", "tokenhub_bench_run"))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = replace(Options.quick_mode(), rounds=args.rounds, seconds=args.seconds)
    run_dir = Path(f"/tmp/tokenhub-ab-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True)
    layout = layout_for(run_dir)
    os.sched_setaffinity(0, set(layout.load_cores))
    services = new_services(f"{args.pg}/{args.db}", args.redis)
    connections = [int(c) for c in args.connections.split(",")]
    with running(options, layout, services, args) as bench:
        before = start_proxy("proxy-before", layout, services, bench.fake.port, code=args.before.resolve())
        key = bench.key if args.unlimited else bench.proxy_key
        which = "unlimited" if args.unlimited else "limited"
        table = Table(f"Before ({args.before}) and after (working tree), {which} key",
                      ["clients", "code", "req/s", "p50 ms", "p99 ms", "target CPU %", "req/s per core",
                       "errors"])
        try:
            urls = {"after": (bench.url("proxy"), bench.pid("proxy"), key.full),
                    "before": (f"{before.base}/v1/chat/completions", before.proc.pid, key.full)}
            compare(bench, table, urls, "ab", connections)
        finally:
            procs.stop(before.proc)
        table.notes += [delta_note(bench.measured, "ab", "after", "before", c) for c in connections]
    print(markdown_table(table))
    print(f"logs: {run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
