"""`tokenhub serve --workers 2`: two processes share the port; a revocation reaches both; a crashed
worker is reported and replaced; metrics add up over the workers; SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.support.ops import admin_call, chat, refused, sample, scrape, wait_until
from tests.support.procs import ServeProcess, serving

pytestmark = pytest.mark.slow


@pytest.fixture
async def two_workers(make_config: Callable[..., Path]) -> AsyncIterator[ServeProcess]:
    async with serving(make_config(), args=["--workers", "2"]) as proc:
        await wait_ready(proc, {"0", "1"})
        yield proc


async def wait_ready(proc: ServeProcess, workers: set[str]) -> None:
    """Until every worker answered /readyz 200 (Postgres, Redis and its subscription up)."""
    seen: set[str] = set()
    async with aiohttp.ClientSession() as session:
        async def all_ready() -> bool:
            async with session.get(proc.url("/readyz"), headers={"Connection": "close"}) as r:
                if r.status == 200:
                    seen.add(r.headers["x-tokenhub-worker"])
            return seen >= workers
        await wait_until(all_ready, timeout=30, interval=0)


async def answers_from(proc: ServeProcess, key: str, status: int, workers: set[str]) -> set[str]:
    """Hit the port on fresh connections until every worker in `workers` answered `status`."""
    seen: set[str] = set()
    async with aiohttp.ClientSession() as session:
        async def all_answered() -> bool:
            code, worker = await chat(session, proc, key)
            if code == status:
                seen.add(worker)
            return seen >= workers
        await wait_until(all_answered, timeout=30, interval=0)
    return seen


def worker_pids(proc: ServeProcess) -> dict[str, int]:
    """Worker index -> pid of its latest start, from the supervisor's log."""
    return {i: int(pid) for i, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", proc.log())}


async def test_revoke_reaches_both_workers(two_workers: ServeProcess) -> None:
    created = await admin_call(two_workers, "POST", "/admin/keys", {"name": "workers"})
    assert await answers_from(two_workers, created["key"], 200, {"0", "1"}) == {"0", "1"}  # both cached it
    revoked = await admin_call(two_workers, "POST", f"/admin/keys/{created['id']}/revoke")
    assert revoked["propagation"]["confirmed"] >= 2  # both workers' subscriptions acknowledged
    assert await answers_from(two_workers, created["key"], 401, {"0", "1"}) == {"0", "1"}


async def test_metrics_add_up_over_workers(two_workers: ServeProcess) -> None:
    created = await admin_call(two_workers, "POST", "/admin/keys", {"name": "metrics"})
    seen: set[str] = set()
    sent = 0
    async with aiohttp.ClientSession() as session:
        while seen != {"0", "1"}:
            status, worker = await chat(session, two_workers, created["key"])
            assert status == 200
            seen.add(worker)
            sent += 1

    async def all_counted() -> bool:  # a scrape is answered by one worker and counts both
        text, route = await scrape(two_workers), "/v1/chat/completions"
        return (sample(text, "tokenhub_requests_total", route=route, status="200") == sent
                and sample(text, "tokenhub_request_duration_seconds_count", route=route) == sent)

    await wait_until(all_counted, timeout=5)  # the other worker copies its numbers once a second


async def test_crashed_worker_is_reported_and_replaced(two_workers: ServeProcess) -> None:
    victim = worker_pids(two_workers)["1"]
    os.kill(victim, signal.SIGKILL)
    await wait_until(lambda: worker_pids(two_workers)["1"] != victim)
    assert f"worker 1 (pid {victim}) exited unexpectedly with signal SIGKILL" in two_workers.log()
    created = await admin_call(two_workers, "POST", "/admin/keys", {"name": "after-crash"})
    assert await answers_from(two_workers, created["key"], 200, {"0", "1"}) == {"0", "1"}


async def test_sigterm_stops_supervisor_and_workers(two_workers: ServeProcess) -> None:
    pids = worker_pids(two_workers).values()
    assert await two_workers.stop(signal.SIGTERM) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert refused(two_workers.port) and refused(two_workers.admin_port)
