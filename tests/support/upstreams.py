"""Misbehaving provider answers for fault tests, as `FakeProvider.override` handlers (tests/support/fakes.py).

Each is a real aiohttp handler on a real socket: a stream whose connection end comes long after its
last event (uvicorn-style, gated by an event the test controls), a stream that drops its connection
mid-way, a redirect, and an answer full of the operator's account headers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SSE = {"Content-Type": "text/event-stream"}


def sse_chunks(n: int, text: str = "tok") -> list[bytes]:
    """`n` OpenAI-style content chunks, then `data: [DONE]`."""
    events = [{"id": "c1", "object": "chat.completion.chunk", "model": "echo",
               "choices": [{"index": 0, "delta": {"content": f"{text}{i} "}, "finish_reason": None}]}
              for i in range(n)]
    events.append({"id": "c1", "object": "chat.completion.chunk", "model": "echo",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def late_eof(end: asyncio.Event, chunks: list[bytes] | None = None, headers: dict[str, str] | None = None
             ) -> Handler:
    """Sends every chunk, `[DONE]` included, then holds the response open (no chunked terminator)
    until `end` is set: the provider's connection end comes well after its last byte."""
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE | (headers or {}))
        await response.prepare(request)
        for chunk in chunks or sse_chunks(3):
            await response.write(chunk)
        await end.wait()
        await response.write_eof()
        return response
    return answer


def drops_after(n: int, dropped: asyncio.Event | None = None) -> Handler:
    """Sends `n` chunks of a stream, then closes its connection without ending the response."""
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE)
        await response.prepare(request)
        for chunk in sse_chunks(n + 5)[:n]:
            await response.write(chunk)
        await asyncio.sleep(0)
        assert request.transport is not None
        request.transport.close()
        if dropped is not None:
            dropped.set()
        return response
    return answer


def endless(sent: list[int], released: asyncio.Event) -> Handler:
    """Streams 16 KiB chunks for as long as the reader takes them; `released` is set when the
    proxy drops the connection (the handler is cancelled or its write fails)."""
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE)
        await response.prepare(request)
        piece = b"data: " + b"x" * 16378 + b"\n\n"
        try:
            while True:
                await response.write(piece)
                sent.append(len(piece))
        except (ConnectionResetError, asyncio.CancelledError):
            released.set()
            raise
    return answer


def redirect(location: str, status: int = 307) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})
    return answer
