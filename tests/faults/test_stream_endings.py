"""How streams end, through a real `tokenhub serve` (the production runner): a provider that drops
mid-stream is a visible failure for curl and the OpenAI SDK and a 502 in the access log and metrics;
a provider whose connection end comes long after its last event (uvicorn-style) is a success, counted
once, whatever the client does after the last event; a client that stops reading loses its stream and
releases the provider connection, so another tenant is not starved by a one-connection pool."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.support.fakes import FakeProvider
from tests.support.faults import CHAT, GUARD, Client, Cluster, scrape
from tests.support.procs import ServeProcess
from tests.support.upstreams import SSE, drops_after, endless, sse_chunks

STREAM = {"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
STREAMS = 40  # many streams: the bug this guards counted 25-50 % of them as client aborts


def late_end(seconds: float) -> Any:
    """A provider that ends its response (and so its connection's message) `seconds` after `[DONE]`."""
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE)
        await response.prepare(request)
        for chunk in sse_chunks(3):
            await response.write(chunk)
        await asyncio.sleep(seconds)
        await response.write_eof()
        return response
    return answer


def requests_by_status(text: str, status: int) -> float:
    """Requests under /v1/ (not the health checks) counted with this status."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tokenhub_requests_total{") and f'status="{status}"' in line
               and 'route="/v1/' in line)


def access_lines(proc: ServeProcess) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in proc.log().splitlines() if x.startswith("{")]
    return [x for x in lines if x["logger"] == "tokenhub.access"]


async def lines_for(proc: ServeProcess, request_ids: set[str]) -> list[dict[str, Any]]:
    """The access lines of these requests, once every one of them has one (lines are batched)."""
    async with asyncio.timeout(GUARD):
        while True:
            found = [x for x in access_lines(proc) if x["request_id"] in request_ids]
            if {x["request_id"] for x in found} == request_ids:
                return found
            await asyncio.sleep(0.1)


async def curl(url: str, key: str, body: dict[str, Any]) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-N", "--max-time", str(GUARD), url, "-H", f"Authorization: Bearer {key}",
        "-H", "Content-Type: application/json", "-d", json.dumps(body),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return int(proc.returncode or 0), out


async def test_a_provider_dropping_mid_stream_fails_curl(cluster: Cluster, client: Client,
                                                         fake: FakeProvider) -> None:
    fake.override = drops_after(2)
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    code, out = await curl(proc.url(CHAT), key, STREAM)
    assert code != 0  # 18: transfer closed with outstanding read data remaining
    assert out.startswith(b"data: ") and b"[DONE]" not in out
    event = json.loads(out.rstrip().rsplit(b"data: ", 1)[1])
    assert set(event["error"]) == {"message", "type", "param", "code"}
    assert event["error"]["code"] == "upstream_unavailable"


async def test_a_provider_dropping_mid_stream_makes_the_openai_sdk_raise(cluster: Cluster, client: Client,
                                                                         fake: FakeProvider) -> None:
    fake.override = drops_after(2)
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    sdk = openai.AsyncOpenAI(base_url=proc.url("/v1"), api_key=key, max_retries=0)
    got: list[Any] = []
    try:
        with pytest.raises((openai.APIError, openai.APIConnectionError)):
            async with asyncio.timeout(GUARD):
                stream = await sdk.chat.completions.create(model="demo/echo", messages=[{"role": "user",
                                                           "content": "hi"}], stream=True,
                                                           extra_headers={"X-Request-ID": "dropped-1"})
                async for chunk in stream:
                    got.append(chunk)
    finally:
        await sdk.close()
    assert got  # the chunks before the failure arrived
    [line] = await lines_for(proc, {"dropped-1"})
    assert line["status"] == 502 and "upstream_failed" in line["message"]
    assert requests_by_status(await scrape(proc), 502) == 1 and requests_by_status(await scrape(proc), 200) == 0


async def read_to_done_then_hang_up(port: int, key: str, request_id: str) -> bytes:
    """A client that stops at `[DONE]` and closes its connection at once (as many SDKs do)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps(STREAM).encode()
    writer.write(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nX-Request-ID: {request_id}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    async with asyncio.timeout(GUARD):
        while b"data: [DONE]" not in got:
            data = await reader.read(65536)
            assert data, got
            got += data
    writer.transport.abort()
    return got


async def test_every_stream_from_a_late_ending_provider_is_one_success(cluster: Cluster, client: Client,
                                                                       fake: FakeProvider) -> None:
    fake.override = late_end(0.5)
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    ids = {f"late-{n}" for n in range(STREAMS)}
    before = await scrape(proc)
    for batch in range(0, STREAMS, 10):
        await asyncio.gather(*(read_to_done_then_hang_up(proc.port, key, f"late-{n}")
                               for n in range(batch, batch + 10)))
    lines = await lines_for(proc, ids)
    assert len(lines) == STREAMS  # exactly one line each
    assert {x["status"] for x in lines} == {200}
    after = await scrape(proc)
    assert requests_by_status(after, 200) - requests_by_status(before, 200) == STREAMS
    assert requests_by_status(after, 499) == 0


async def test_a_late_ending_provider_does_not_hold_the_client(cluster: Cluster, client: Client,
                                                               fake: FakeProvider) -> None:
    end = asyncio.Event()
    fake.override = late_end(3600)  # never ends during the test
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    code, out = await curl(proc.url(CHAT), key, STREAM)
    assert code == 0 and out == b"".join(sse_chunks(3))  # complete, terminator included
    end.set()


def slow_reader(port: int, key: str) -> socket.socket:
    """A client that sends a streaming request and then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    body = json.dumps(STREAM).encode()
    sock.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


async def test_a_client_that_stops_reading_releases_the_provider_connection(cluster: Cluster, client: Client,
                                                                            fake: FakeProvider) -> None:
    sent: list[int] = []
    released = asyncio.Event()
    fake.override = endless(sent, released)
    proc = await cluster.start(server={"client_write_timeout_seconds": 1.0},
                               upstream={"max_connections": 1, "first_byte_timeout_seconds": 5.0})
    key, _ = await client.issue(proc)
    sock = slow_reader(proc.port, key)
    try:
        await asyncio.wait_for(released.wait(), GUARD)  # the proxy gave up on the stalled client
        fake.override = None
        answer = await client.chat(proc, key)  # the one pooled connection is free again
        assert answer.status == 200
    finally:
        sock.close()
    assert sum(sent) > 0
