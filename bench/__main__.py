"""`python -m bench [--quick]`: run every scenario, print the tables, record them in bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from . import capacity, coldflood, governed, health, load, micro, procs, profile, rate, revocation, stack
from .chunks import chunk_cpu
from .context import Bench, Options
from .goals import evaluate
from .keys import BenchKey, create_database, issue, open_store, reset_database
from .limiter import limiter
from .procs import BenchError
from .report import Table, code_version, machine, record, render
from .stack import Layout, Services

README = Path(__file__).with_name("README.md")
SCENARIOS: dict[str, Callable[[Bench], Table]] = {
    "throughput": load.throughput,
    "sustained": rate.sustained,
    "streaming": load.streaming,
    "chunks": chunk_cpu,
    "limits": governed.limits,
    "limiter": limiter,
    "metering": governed.metering,
    "cold": lambda b: asyncio.run(coldflood.cold_keys(b)),
    "flood": coldflood.flood,
    "revocation": revocation.revocation,
    "memory": capacity.memory,
    "workers": capacity.workers,
    "micro": micro.micro,
    "profile": profile.profile,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run (< 2 minutes), not recorded")
    p.add_argument("--rounds", type=int, help="rounds per measurement (targets alternate within a round)")
    p.add_argument("--seconds", type=float, help="length of one measured run")
    p.add_argument("--only", help=f"comma-separated scenarios out of: {', '.join(SCENARIOS)}")
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=None,
                   help="write the results into bench/README.md (default: only for a full run of everything)")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432"),
                   help="Postgres server (the bench creates and empties its own database there)")
    p.add_argument("--db", default=os.environ.get("BENCH_DB", "tokenhub_bench_run"))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/11"))
    p.add_argument("--run-dir", type=Path, help="logs, configs and profiles (default: a new /tmp directory)")
    return p.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    options = Options.quick_mode() if args.quick else Options.full_mode()
    if args.rounds:
        options = replace(options, rounds=args.rounds)
    if args.seconds:
        options = replace(options, seconds=args.seconds)
    return options


def layout_for(run_dir: Path) -> Layout:
    """Target on core 0; load generator, fake provider and this process on the other core(s)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Layout((cores[0],), (cores[0],), run_dir)
    return Layout((cores[0],), tuple(cores[1:]), run_dir)


async def _prepare(services: Services) -> BenchKey:
    """Empty the bench database (after `tokenhub migrate`) and issue the key the load scenarios use."""
    await reset_database(services.dsn)
    async with open_store(services.dsn, services.redis_url, services.namespace) as store:
        [key] = await issue(store, 1, prefix="warm")
    return key


@contextlib.contextmanager
def running(options: Options, layout: Layout, services: Services,
            args: argparse.Namespace) -> Iterator[Bench]:
    """The fake provider, the relay and the proxy, up for the whole run and stopped at the end."""
    started: list[procs.Proc] = []
    try:
        fake = stack.start_fake(layout)
        started.append(fake)
        asyncio.run(create_database(args.pg, args.db))
        stack.migrate(layout, services, fake.port)
        key = asyncio.run(_prepare(services))
        relay = stack.start_relay(layout, fake.port, [key.full])
        started.append(relay)
        proxy = stack.start_proxy("proxy", layout, services, fake.port)
        started.append(proxy.proc)
        limited, why_not = governed.limited_key(proxy, services.admin_token)
        bench = Bench(options, layout, services, fake, relay, proxy, key=key, limited=limited,
                      limited_note=why_not)
        if limited is not None:
            governed.warm(bench, limited)
        else:
            print(f"    {why_not}: the proxy is measured with an unlimited key", file=sys.stderr, flush=True)
        yield bench
    finally:
        for proc in reversed(started):
            procs.stop(proc)


def run_scenarios(bench: Bench, names: list[str]) -> list[Table]:
    tables = []
    for name in names:
        started = time.monotonic()
        print(f"==> {name}", file=sys.stderr, flush=True)
        try:
            tables.append(SCENARIOS[name](bench))
        except BenchError as exc:
            failed = Table(f"{name}: could not be measured", ["reason"])
            failed.add(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            failed.notes.append("details: " + " / ".join(str(exc).splitlines()[1:6]))
            tables.append(failed)
        print(f"    {name} took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return tables


def header(command: str, code: str, options: Options, layout: Layout, load: tuple[str, str],
           took: float) -> list[str]:
    mode = "quick" if options.quick else "full"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return [
        (f"Run: {when}, {mode} mode, `{command}`: {options.rounds} round(s) of {options.seconds:g} s per "
         f"figure, medians; took {took / 60:.1f} min."),
        "",
        "Machine: " + "; ".join(machine()) + ".",
        f"Code: {code}.",
        (f"Placement: targets on core(s) {layout.target_cores}, wrk / clients / fake provider on "
         f"{layout.load_cores}. Load average (1, 5, 15 min) before: {load[0]}; after: {load[1]}."),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = options_from(args)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path(f"/tmp/tokenhub-bench-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    layout = layout_for(run_dir)
    os.sched_setaffinity(0, set(layout.load_cores))  # this process drives load too: keep it off the target
    services = stack.new_services(f"{args.pg}/{args.db}", args.redis)
    before, started, code = procs.loadavg(), time.monotonic(), code_version(procs.ROOT)
    try:
        with running(options, layout, services, args) as bench:
            tables = run_scenarios(bench, names)
    except BenchError as exc:
        print(f"bench: {exc}\n(logs in {run_dir})", file=sys.stderr)
        return 1
    tables.append(health.proxy_logs(run_dir))  # after the proxies stopped: their logs are complete
    command = os.environ.get("BENCH_COMMAND") or " ".join(["python -m bench", *(argv or sys.argv[1:])])
    after = code_version(procs.ROOT)
    if after != code:  # the working tree is shared: someone committed or edited the product meanwhile
        code = f"{code} at the start, {after} at the end (**the product changed during the run**)"
    lines = header(command, code, options, layout, (before, procs.loadavg()), time.monotonic() - started)
    body = render(lines, tables, evaluate(bench.measured))
    print(body)
    (run_dir / "results.json").write_text(json.dumps(bench.measured, indent=2, sort_keys=True))
    if args.record if args.record is not None else not (options.quick or args.only):
        record(README, body)
        print(f"recorded in {README}", file=sys.stderr)
    print(f"logs, configs and the profile: {run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
