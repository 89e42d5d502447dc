"""The benchmark's own helpers: wrk script and output, profile ranking, the fake provider, the relay,
the README recorder. No timing is asserted; the bench itself is never run here."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.fake import StreamShape, serve
from bench.goals import evaluate
from bench.health import summarize_log
from bench.load import rotations
from bench.profile import area, rank
from bench.relay import create_relay_app
from bench.report import END, START, record
from bench.stats import percentile
from bench.wrk import lua_string, parse_output, render_script


@pytest.fixture
async def fake_url() -> AsyncIterator[str]:
    server = await serve("127.0.0.1", 0, StreamShape(chunks=4))
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_fake_answers_chat_on_one_keepalive_connection(fake_url: str) -> None:
    async with aiohttp.ClientSession() as client:
        for _ in range(3):
            async with client.post(f"{fake_url}/v1/chat/completions", json={"model": "m"}) as r:
                body = await r.json()
                assert r.status == 200 and body["object"] == "chat.completion"
        assert len(client.connector._conns) == 1  # type: ignore[union-attr]


async def test_fake_streams_each_event_as_its_own_chunk(fake_url: str) -> None:
    async with aiohttp.ClientSession() as client, client.post(f"{fake_url}/v1/chat/completions",
                           json={"model": "m", "stream": True, "bench_delay_ms": 1}) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        text = (await r.read()).decode()
    events = [e for e in text.split("\n\n") if e]
    assert len(events) == 5 and events[-1] == "data: [DONE]"


async def test_fake_answers_a_request_split_across_packets(fake_url: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(fake_url.rsplit(":", 1)[1]))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 13\r\n\r\n{\"model\":")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b'"m"}')
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK")


async def test_relay_checks_the_key_and_forwards(aiohttp_client, fake_url: str) -> None:  # type: ignore[no-untyped-def]
    client = await aiohttp_client(create_relay_app(fake_url, ["good"]))
    path, body = "/v1/chat/completions", {"model": "m"}
    bad = await client.post(path, json=body, headers={"Authorization": "Bearer no"})
    ok = await client.post(path, json=body, headers={"Authorization": "Bearer good"})
    assert bad.status == 401
    assert ok.status == 200 and (await ok.json())["object"] == "chat.completion"


def test_wrk_script_quotes_keys_and_body() -> None:
    script = render_script(body='{"a":"]]"}', keys=["k1"], delay_ms=5, count_statuses=True)
    assert lua_string('{"a":"]]"}') in script and "[[k1]]" in script
    assert "function delay()" in script and "function response(" in script
    assert "function response(" not in render_script(body="{}", keys=[])


def test_wrk_output_is_parsed() -> None:
    line = ('WRKJSON {"requests": 2000, "duration_us": 2000000, "bytes": 1, "mean": 1500.0, "max": 9000, '
            '"err_connect": 0, "err_read": 0, "err_write": 0, "err_status": 3, "err_timeout": 1, '
            '"p50": 1000, "p90": 2000, "p99": 5000, "p99.9": 8000, "statuses": {"200": 1996, "401": 3}}')
    result = parse_output("Running 2s test\n" + line + "\n", wrk_cpu_pct=12.5)
    assert (result.rps, result.p50_ms, result.p99_ms, result.errors) == (1000.0, 1.0, 5.0, 4)
    assert result.statuses == {200: 1996, 401: 3} and result.wrk_cpu_pct == 12.5


def test_profile_ranks_self_and_inclusive_time() -> None:
    stacks = ["main (proxy/__main__.py:5);auth (proxy/auth.py:9);get (keystore/cache.py:3) 3",
              "main (proxy/__main__.py:5);auth (proxy/auth.py:10) 1",
              "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:58) 50"]
    ranking = rank(stacks)
    assert ranking.samples == 4  # idle pool workers are not counted
    assert ranking.self_counts["get (keystore/cache.py)"] == 3
    assert ranking.total_counts["auth (proxy/auth.py)"] == 4
    assert area("get (keystore/cache.py)") == "keystore"
    assert area("x (aiohttp/web_app.py)") == "aiohttp server"


def test_percentile_and_rotation() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5 and math.isnan(percentile([], 99))
    assert rotations(["a", "b", "c"], 4) == [list("abc"), list("bca"), list("cab"), list("abc")]


def test_goals_without_figures_are_not_measured() -> None:
    goals = {g.name: g for g in evaluate({"micro.warm_us": 12.0})}
    assert goals["warm key check (KeyStore.authenticate)"].met is True
    assert goals["revocation visible on all three instances, p99"].met is None


def test_record_replaces_only_the_results_section(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{START}\nold\n{END}\n\nafter\n")
    record(readme, "new table")
    assert readme.read_text() == f"# Bench\n\nintro\n\n{START}\nnew table\n{END}\n\nafter\n"


def test_proxy_log_summary_counts_answers_and_errors(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    log.write_text(
        '{"logger": "tokenhub.access", "level": "INFO", "message": "POST /v1/chat/completions 200 1.0ms"}\n'
        '{"logger": "tokenhub.access", "level": "INFO", "message": "POST /v1/chat/completions 500 1.0ms"}\n'
        '{"logger": "proxy.errors", "level": "ERROR", "message": "unhandled error",'
        ' "exception": "T\\nBoom: x"}\n'
        "not json\n"
    )
    statuses, errors = summarize_log(log)
    assert statuses == {"200": 1, "500": 1}
    assert errors == {"unhandled error: Boom: x": 1}
