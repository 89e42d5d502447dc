"""A fake OpenAI-compatible provider for tests: the real demo app (proxy/runtime/demo.py), wrapped to record
every request it received, to hold a stream after its first chunk, to notice when it is cancelled, and
to answer with a canned response when a test needs a particular upstream behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from proxy.runtime.demo import DEMO_MODELS, create_demo_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class FakeProvider:
    """`app` is the provider; `received` what reached it; `hold_streams()` parks every stream after its
    first chunk until `release()`; `cancelled` is set when a handler of ours is cancelled (the proxy
    dropped the connection); `override` replaces the demo's answer."""

    def __init__(self, models: tuple[str, ...] = DEMO_MODELS) -> None:
        self.received: list[Received] = []
        self.override: Handler | None = None
        self.first_chunk_sent = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.finished = asyncio.Event()
        self._gate = asyncio.Event()
        self._gate.set()
        self.app = create_demo_app(models=models, on_chunk=self._on_chunk)
        self.app.middlewares.append(self._record)

    @property
    def last(self) -> Received:
        assert self.received, "the provider received nothing"
        return self.received[-1]

    def hold_streams(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def _on_chunk(self, n: int) -> None:
        if n == 0:
            self.first_chunk_sent.set()
            await self._gate.wait()

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.path, request.query_string,
                                      request.headers, body))
        try:
            response = await (self.override or handler)(request)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        self.finished.set()
        return response


def canned(status: int, body: bytes, headers: dict[str, str] | None = None) -> Handler:
    """An override that answers with exactly these bytes."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, headers=headers)
    return answer


def stalling(first: bytes | None, release: asyncio.Event) -> Handler:
    """An override that sends headers (and `first`, if given) and then waits for `release` to finish;
    `first=None` means it waits before sending anything (not even headers)."""
    async def answer(request: web.Request) -> web.StreamResponse:
        if first is None:
            await release.wait()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if first is not None:
            await response.write(first)
            await release.wait()
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    return answer
