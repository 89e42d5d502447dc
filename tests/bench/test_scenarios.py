"""The helpers of the newer bench scenarios: the sustained-rate search, the fake provider's delayed and
long answers, request bodies, feature detection, goal arithmetic. No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bench.context import chat_body
from bench.fake import StreamShape, serve
from bench.goals import evaluate
from bench.governed import delta_note
from bench.load import Sample
from bench.profile import by_concern
from bench.rate import MAX_STEPS, P99_LIMIT_MS, best, search
from bench.stack import config_has


def _sample(p99_ms: float, rps: float = 0.0, errors: int = 0) -> Sample:
    return Sample(rps=rps, p50_ms=p99_ms / 2, p99_ms=p99_ms, target_cpu=50.0, load_cpu=5.0, fake_cpu=1.0,
                  errors=errors)


def _target_with_capacity(limit: int) -> tuple[list[int], object]:
    """A fake target whose p99 passes the limit above `limit` connections (req/s grows with them)."""
    asked: list[int] = []

    def measure(conns: int) -> Sample:
        asked.append(conns)
        return _sample(20.5 if conns <= limit else 40.0, rps=conns * 48.0)

    return asked, measure


def test_search_doubles_then_bisects_to_the_capacity() -> None:
    asked, measure = _target_with_capacity(40)
    steps = search(measure)  # type: ignore[arg-type]
    top = best(steps)
    assert asked[:6] == [2, 4, 8, 16, 32, 64]
    assert 64 in asked and asked.count(64) == 2  # a failing step is measured twice
    assert top is not None and 32 <= top.connections <= 40 and top.sample.p99_ms < P99_LIMIT_MS
    assert len(steps) <= MAX_STEPS


def test_search_stops_within_its_step_budget_and_ignores_errors() -> None:
    steps = search(lambda c: _sample(1.0, rps=c, errors=1))  # p99 fine, but every step has errors
    assert best(steps) is None and len(steps) <= MAX_STEPS
    steps = search(lambda c: _sample(1.0, rps=c))  # never saturates: bounded by connections and steps
    assert len(steps) <= MAX_STEPS and best(steps) is not None


def test_chat_body_carries_the_provider_shape() -> None:
    plain, slow = json.loads(chat_body()), json.loads(chat_body(delay_ms=20))
    stream = json.loads(chat_body(stream=True, delay_ms=2, chunks=80))
    assert "bench_delay_ms" not in plain and slow["bench_delay_ms"] == 20 and "stream" not in slow
    assert stream["stream"] is True and stream["bench_chunks"] == 80 and stream["bench_delay_ms"] == 2


@pytest.fixture
async def fake_port() -> AsyncIterator[int]:
    server = await serve("127.0.0.1", 0, StreamShape(chunks=4))
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def test_fake_holds_a_delayed_answer_and_keeps_order(fake_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", fake_port)
    slow, fast = chat_body(delay_ms=30).encode(), chat_body().encode()
    for body in (slow, fast):  # pipelined: the second must not overtake the first
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    with pytest.raises(TimeoutError):  # nothing before the provider's delay
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=0.005)
    answers = [await asyncio.wait_for(reader.readuntil(b"chat.completion"), timeout=10) for _ in range(2)]
    writer.close()
    assert all(a.count(b"HTTP/1.1 200 OK") == 1 for a in answers)


async def test_fake_streams_as_many_events_as_asked(fake_port: int) -> None:
    body = json.loads(chat_body(stream=True, chunks=40))
    async with aiohttp.ClientSession() as client, client.post(
            f"http://127.0.0.1:{fake_port}/v1/chat/completions", json=body) as r:
        text = (await r.read()).decode()
    events = [e for e in text.split("\n\n") if e]
    assert len(events) == 41 and events[-1] == "data: [DONE]" and "tok39 " in events[-2]


def test_feature_detection_reads_the_product_config() -> None:
    assert config_has("server", "workers") and config_has("providers", "models")
    assert not config_has("server", "no_such_setting") and not config_has("no_such_section", "x")


def test_delta_note_and_the_new_goals() -> None:
    m = {"limits.limited.c16.per_core": 900.0, "limits.unlimited.c16.per_core": 1000.0,
         "limits.limited.c16.p50": 1.2, "limits.unlimited.c16.p50": 1.0,
         "limits.limited.c16.p99": 3.0, "limits.unlimited.c16.p99": 2.5}
    note = delta_note(m, "limits", "limited", "unlimited", 16)
    assert "0.90×" in note and "p50 +0.200 ms" in note and m["limits.c16.ratio"] == pytest.approx(0.9)
    goals = {g.name: g for g in evaluate({"proxy.c1.p99": 1.6, "direct.c1.p99": 1.0, "proxy.chunk_us": 30.0,
                                          "relay.chunk_us": 20.0})}
    assert goals["added p99 latency at 1 client over direct"].met is False  # 0.6 ms > 0.5 ms
    assert goals["stream CPU per chunk vs bare relay"].measured == "1.50×"
    assert math.isnan(m.get("absent", math.nan))


def test_profile_concerns_count_work_not_the_middlewares_around_it() -> None:
    stacks = [("run (uvloop/x.py:1);auth_mw (proxy/gateway/auth.py:9);forward (proxy/gateway/forward.py:3);"
               "Limiter.reserve (proxy/limits/limiter.py:5);execute (redis/asyncio/client.py:7) 3"),
              "run (uvloop/x.py:1);auth_mw (proxy/gateway/auth.py:9);LocalCache.get (keystore/cache.py:2) 1",
              "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:58) 50"]
    samples, concerns = by_concern(stacks)
    assert samples == 4  # idle pool workers are not counted
    assert concerns["limits (proxy/limits/, their Redis calls)"] == 3
    assert concerns["Redis client (redis-py, all callers)"] == 3
    assert concerns["key check (keystore)"] == 1  # auth_mw wraps everything: only the keystore's work counts
