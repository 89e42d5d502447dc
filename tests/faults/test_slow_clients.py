"""Slow clients against a real `tokenhub serve`: a request head trickling in is cut after
header_timeout_seconds (aiohttp has no such timeout of its own: proxy/protocol.py); a body trickling in
gets 408 after body_timeout_seconds. Neither ever reaches, or holds a connection to, the provider."""

from __future__ import annotations

import asyncio

from tests.faults.conftest import GUARD, Client, Cluster, body_of, status_of
from tests.fakes import FakeProvider

SLOW = {"header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}


async def trickle(port: int, parts: list[bytes], pause: float) -> bytes:
    """Send `parts` with `pause` between them; return what the server answered before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(GUARD):
            for part in parts:
                if reader.at_eof():
                    break
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(pause)
            return await reader.read(-1)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def test_a_request_head_trickling_in_is_cut(cluster: Cluster, fake: FakeProvider) -> None:
    proc = await cluster.start(server=SLOW)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 200
    parts = [head[i:i + 2] for i in range(0, len(head), 2)]  # 2 bytes every 0.1 s: ~100 s in all
    answer = await trickle(proc.port, parts, 0.1)
    assert answer == b""  # closed without an answer, long before the head could complete
    assert fake.received == []
    assert "request head did not arrive" in proc.log()


async def test_a_silent_connection_is_cut(cluster: Cluster) -> None:
    proc = await cluster.start(server=SLOW)
    reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
    async with asyncio.timeout(GUARD):
        assert await reader.read(-1) == b""  # nothing sent, nothing held
    writer.close()


async def test_a_body_trickling_in_gets_408_and_never_reaches_the_provider(
        cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    proc = await cluster.start(server=SLOW)
    key, _ = await client.issue(proc)
    body = b'{"model": "demo/echo", "messages": []}'
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    answer = await trickle(proc.port, [head] + [body[i:i + 1] for i in range(len(body))], 0.2)
    assert status_of(answer) == 408 and b'"request_timeout"' in body_of(answer)
    assert fake.received == []


async def test_a_slow_but_complete_head_within_the_bound_is_served(cluster: Cluster, client: Client) -> None:
    proc = await cluster.start(server=SLOW)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await trickle(proc.port, [head[:10], head[10:]], 0.2)
    assert status_of(answer) == 200
