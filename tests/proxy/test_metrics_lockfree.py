"""The hot path's metrics are plain numbers copied into Prometheus when it is read (runtime/metrics.py):
every request finished before a scrape is in it, exactly once, in the counter and the histogram; the
requests themselves make no Prometheus call; the histogram copy matches `observe()` in memory and in
multiprocess files (the one place that reaches into prometheus-client's internals)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram

from proxy.runtime.metrics import LATENCY_BUCKETS, Metrics, RouteSeries, add_observations
from proxy.state import METRICS
from tests.support.fakes import FakeProvider
from tests.support.ops import sample

CHAT = "/v1/chat/completions"
BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
# zero, on a bound, between bounds, on the last bound and beyond it (+Inf)
LATENCIES = (0.0, 0.0004, 0.0005, 0.003, 0.0031, 0.7, 1.0, 119.0, 120.0, 121.0, 3600.0)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(registry: CollectorRegistry) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples
            if not s.name.endswith("_created")}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def scrape(proxy: TestClient) -> str:
    return proxy.app[METRICS].render().decode()


def test_copied_buckets_are_what_observe_gives() -> None:
    """Fails if prometheus-client changes the internals `add_observations` relies on."""
    observed, copied = CollectorRegistry(), CollectorRegistry()
    by_observe = Histogram("h", "h", ["route"], buckets=LATENCY_BUCKETS, registry=observed).labels("/a")
    by_copy = Histogram("h", "h", ["route"], buckets=LATENCY_BUCKETS, registry=copied)
    requests = Counter("r", "r", ["route", "status"], registry=(counted := CollectorRegistry()))
    series = RouteSeries("/a")
    for round_ in (LATENCIES, LATENCIES[3:]):  # twice: the second copy adds only what is new
        for seconds in round_:
            by_observe.observe(seconds)
            series.add(200, seconds)
        series.sync(requests, by_copy)
        assert samples(copied) == samples(observed)
    assert counted.get_sample_value("r_total", {"route": "/a", "status": "200"}) == 2 * len(LATENCIES) - 3


def test_copied_buckets_refuse_a_wrong_shape() -> None:
    histogram = Histogram("h", "h", ["route"], buckets=(1, 2), registry=CollectorRegistry()).labels("/a")
    with pytest.raises(ValueError):
        add_observations(histogram, [1, 2], 1.0)  # three buckets, with +Inf


_WORKER = """
import sys
from proxy.runtime.metrics import Metrics
metrics = Metrics()
for seconds in sys.argv[1:]:
    metrics._route(None).add(200, float(seconds))
metrics.sync()
print(metrics.render().decode() if not sys.argv[1:] else "")
"""


def run_worker(directory: Path, *latencies: float) -> str:
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run([sys.executable, "-c", _WORKER, *map(str, latencies)], env=env, check=True,
                          capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    return done.stdout


def test_workers_copies_add_up_in_multiprocess_files(tmp_path: Path) -> None:
    """Two worker processes copy their own requests; a third one's scrape shows their sum."""
    run_worker(tmp_path, *LATENCIES)
    run_worker(tmp_path, *LATENCIES[:4])
    text = run_worker(tmp_path)
    reference = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=(r := CollectorRegistry()))
    for seconds in (*LATENCIES, *LATENCIES[:4]):
        reference.observe(seconds)
    name, route = "tokenhub_request_duration_seconds", {"route": "unmatched"}
    for bound in (*LATENCY_BUCKETS, "+Inf"):
        le = "+Inf" if bound == "+Inf" else str(float(bound))
        assert sample(text, f"{name}_bucket", le=le, **route) == r.get_sample_value("h_bucket", {"le": le})
    assert sample(text, f"{name}_count", **route) == len(LATENCIES) + 4
    assert sample(text, f"{name}_sum", **route) == pytest.approx(r.get_sample_value("h_sum"))
    assert sample(text, "tokenhub_requests_total", status="200", **route) == len(LATENCIES) + 4


async def test_every_request_finished_before_a_scrape_is_in_it(proxy: TestClient, key: str) -> None:
    for n in range(1, 6):
        r = await proxy.post(CHAT, json=BODY, headers=auth(key))
        assert r.status == 200
        await r.read()
        text = scrape(proxy)
        assert sample(text, "tokenhub_requests_total", route=CHAT, status="200") == n
        assert sample(text, "tokenhub_request_duration_seconds_count", route=CHAT) == n
        assert sample(text, "tokenhub_request_duration_seconds_bucket", route=CHAT, le="+Inf") == n


async def test_counts_by_route_and_status_add_up(proxy: TestClient, key: str) -> None:
    for headers, status in ((auth(key), 200), ({}, 401), (auth(key), 200), (auth("th-garbage"), 401)):
        r = await proxy.post(CHAT, json=BODY, headers=headers)
        assert r.status == status
    assert (await proxy.get("/nowhere")).status == 404
    text = scrape(proxy)
    assert sample(text, "tokenhub_requests_total", route=CHAT, status="200") == 2
    assert sample(text, "tokenhub_requests_total", route=CHAT, status="401") == 2
    assert sample(text, "tokenhub_requests_total", route="unmatched", status="404") == 1
    assert sample(text, "tokenhub_request_duration_seconds_count", route=CHAT) == 4
    assert sample(text, "tokenhub_request_duration_seconds_count", route="unmatched") == 1
    assert sample(text, "tokenhub_request_duration_seconds_sum", route=CHAT) > 0
    assert sample(text, "tokenhub_requests_in_flight") == 0


async def test_requests_leave_prometheus_alone_until_it_is_read(proxy: TestClient, key: str) -> None:
    metrics = proxy.app[METRICS]
    assert (await proxy.post(CHAT, json=BODY, headers=auth(key))).status == 200
    assert not [s for m in metrics._requests.collect() for s in m.samples]  # no series yet: no call made
    assert metrics.registry.get_sample_value("tokenhub_requests_total", {"route": CHAT, "status": "200"}) == 1


async def test_a_stopping_app_copies_its_last_requests(proxy: TestClient, key: str) -> None:
    """With workers, the files must hold a stopped worker's requests: no scrape will copy them later."""
    metrics = proxy.app[METRICS]
    assert (await proxy.post(CHAT, json=BODY, headers=auth(key))).status == 200
    await proxy.close()  # the app's cleanup, as at the end of a drain
    [counted] = [s.value for m in metrics._requests.collect() for s in m.samples if s.name.endswith("_total")]
    assert counted == 1


async def test_a_held_stream_is_in_flight(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    fake.hold_streams()
    r = await proxy.post(CHAT, json=BODY | {"stream": True}, headers=auth(key))
    await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    assert sample(scrape(proxy), "tokenhub_requests_in_flight") == 1
    fake.release()
    await asyncio.wait_for(r.read(), 10)
    for _ in range(200):
        if sample(scrape(proxy), "tokenhub_requests_in_flight") == 0:
            break
        await asyncio.sleep(0.02)
    assert sample(scrape(proxy), "tokenhub_requests_in_flight") == 0


def test_limiter_and_usage_numbers_are_read_fresh() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.limits.decided("admitted", "redis")
    metrics.limits.decided("rate_limited", "newcomer")  # a decider the table does not know yet
    metrics.limits.redis_up.set(0)
    usage = metrics.usage.model("openai", "openai/gpt")
    usage.requests, usage.input_tokens, usage.usd = 2, 30, 0.25
    metrics.usage.count_unmetered("openai", "no_usage")
    read = metrics.registry.get_sample_value
    assert read("tokenhub_limits_decisions_total", {"outcome": "admitted", "by": "redis"}) == 3
    assert read("tokenhub_limits_decisions_total", {"outcome": "rate_limited", "by": "newcomer"}) == 1
    assert read("tokenhub_limits_redis_up") == 0
    labels = {"provider": "openai", "model": "openai/gpt"}
    assert read("tokenhub_usage_requests_total", labels) == 2 and read("tokenhub_usage_usd_total", labels) == 0.25
    assert read("tokenhub_usage_tokens_total", labels | {"kind": "input"}) == 30
    assert read("tokenhub_usage_unmetered_total", {"provider": "openai", "reason": "no_usage"}) == 1
