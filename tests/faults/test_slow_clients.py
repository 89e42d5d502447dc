"""Slow clients against a real `tokenhub serve`: a request head trickling in is cut after
header_timeout_seconds (aiohttp has no such timeout of its own: proxy/runtime/protocol.py); a body trickling in
gets 408 after body_timeout_seconds, and the connection closes (after aiohttp's lingering read of
at most 10 s). Neither ever reaches, or holds a connection to, the provider."""

from __future__ import annotations

import asyncio

from tests.support.fakes import FakeProvider
from tests.support.faults import GUARD, Client, Cluster, body_of, status_of

SLOW = {"header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}


async def trickle(port: int, parts: list[bytes], pause: float) -> tuple[bytes, int]:
    """Send `parts` with `pause` between them until the server answers or closes; return (the first bytes
    of its answer, b"" if it closed without one; how many parts were sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.read(65536))
    sent = 0
    try:
        async with asyncio.timeout(GUARD):
            for part in parts:
                if answer.done():
                    break
                writer.write(part)
                sent += 1
                await asyncio.sleep(pause)
            return await answer, sent
    except ConnectionResetError:
        return b"", sent
    finally:
        answer.cancel()
        writer.close()


async def test_a_request_head_trickling_in_is_cut(cluster: Cluster, fake: FakeProvider) -> None:
    proc = await cluster.start(server=SLOW)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 200
    parts = [head[i:i + 2] for i in range(0, len(head), 2)]  # 2 bytes every 0.1 s: ~100 s in all
    answer, sent = await trickle(proc.port, parts, 0.1)
    assert answer == b"" and sent < len(parts)  # closed, unanswered, long before the head completed
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
    parts = [head] + [body[i:i + 1] for i in range(len(body))]
    answer, sent = await trickle(proc.port, parts, 0.2)
    assert sent < len(parts)  # answered and closed while the body was still trickling in
    assert status_of(answer) == 408 and b'"request_timeout"' in body_of(answer)
    assert b"Connection: close" in answer  # the rest of the body is not read as a next request
    assert fake.received == []


async def test_a_slow_but_complete_head_within_the_bound_is_served(cluster: Cluster, client: Client) -> None:
    proc = await cluster.start(server=SLOW)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer, _ = await trickle(proc.port, [head[:10], head[10:]], 0.2)
    assert status_of(answer) == 200
