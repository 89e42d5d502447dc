"""The tap seam of the relay (proxy/gateway/tap.py): what a tap sees, in what order, and that `on_end`
comes exactly once with the right Outcome, against a real recording provider on a real socket.

The relay is driven directly by a one-route app (the request path does not wire a tap yet: metering
and limits do), with the shared error middleware in front as in the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import UpstreamConfig
from proxy.errors import error_mw
from proxy.gateway.relay import relay
from proxy.gateway.tap import Outcome
from tests.support.fakes import FakeProvider, canned
from tests.support.procs import free_port
from tests.support.upstreams import drops_after, late_eof, sse_chunks

STREAM = b'{"model": "echo", "stream": true, "messages": [{"role": "user", "content": "a b c"}]}'
WHOLE = b'{"model": "echo", "messages": [{"role": "user", "content": "a b c"}]}'
TAP = web.AppKey("tap", object)


@dataclass
class RecordingTap:
    events: list[tuple[str, Any]] = field(default_factory=list)
    drop: bytes | None = None  # an event cut out of the stream (as a usage chunk the client did not ask for)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def on_start(self, status: int, headers: CIMultiDictProxy[str]) -> None:
        self.events.append(("start", status))

    def on_chunk(self, chunk: bytes) -> bytes:
        self.events.append(("chunk", chunk))
        return chunk.replace(self.drop, b"") if self.drop is not None else chunk

    def on_body(self, body: bytes) -> bytes:
        self.events.append(("body", body))
        return body

    def on_end(self, outcome: Outcome) -> None:
        self.events.append(("end", outcome))
        self.ended.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def ends(self) -> list[Any]:
        return [value for kind, value in self.events if kind == "end"]

    def relayed(self) -> bytes:
        return b"".join(v for k, v in self.events if k == "chunk")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def tapped_proxy(aiohttp_client: Any, session: aiohttp.ClientSession, url: str,
                       tap: RecordingTap, **limits: float) -> TestClient:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await relay(request, session, url, await request.read(), CIMultiDict(), UpstreamConfig(**limits),
                           "demo", tap, write_timeout=5.0)

    app = web.Application(middlewares=[error_mw])
    app.router.add_post("/x", handler)
    return await aiohttp_client(app)


@pytest.fixture
async def upstream_url(aiohttp_server: Any, fake: FakeProvider) -> str:
    return str((await aiohttp_server(fake.app)).make_url("/v1/chat/completions"))


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


async def test_a_stream_is_seen_chunk_by_chunk_then_completed(aiohttp_client: Any, session: Any,
                                                              upstream_url: str) -> None:
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    r = await proxy.post("/x", data=STREAM)
    received = await r.read()
    await asyncio.wait_for(tap.ended.wait(), 10)
    assert tap.kinds()[0] == "start" and tap.events[0][1] == 200
    assert tap.kinds()[-1] == "end" and tap.ends() == [Outcome.COMPLETED]
    assert set(tap.kinds()[1:-1]) == {"chunk"}
    assert tap.relayed() == received and received.endswith(b"data: [DONE]\n\n")


async def test_a_whole_answer_is_seen_once_as_a_body(aiohttp_client: Any, session: Any, upstream_url: str) -> None:
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    r = await proxy.post("/x", data=WHOLE)
    received = await r.read()
    await asyncio.wait_for(tap.ended.wait(), 10)
    assert tap.kinds() == ["start", "body", "end"]
    assert tap.events[1][1] == received and tap.ends() == [Outcome.COMPLETED]


async def test_a_tap_may_drop_bytes_it_asked_for(aiohttp_client: Any, session: Any, upstream_url: str,
                                                 fake: FakeProvider) -> None:
    end, chunks = asyncio.Event(), sse_chunks(3)
    end.set()
    fake.override = late_eof(end, chunks)
    tap = RecordingTap(drop=chunks[-2])  # the finish_reason event
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    received = await (await proxy.post("/x", data=STREAM)).read()
    assert received == b"".join(chunks[:-2] + chunks[-1:])
    assert tap.relayed() == b"".join(chunks)


async def test_an_unreachable_provider_ends_as_not_sent_without_a_start(aiohttp_client: Any, session: Any) -> None:
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, f"http://127.0.0.1:{free_port()}/x", tap)
    r = await proxy.post("/x", data=STREAM)
    assert r.status == 502
    assert tap.kinds() == ["end"] and tap.ends() == [Outcome.NOT_SENT]


@pytest.mark.parametrize("status, outcome", [(401, Outcome.UPSTREAM_FAILED), (500, Outcome.COMPLETED)])
async def test_provider_errors_end_with_start_and_one_end(aiohttp_client: Any, session: Any, upstream_url: str,
                                                          fake: FakeProvider, status: int, outcome: Outcome) -> None:
    fake.override = canned(status, b'{"error": {"message": "no"}}', {"Content-Type": "application/json"})
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    r = await proxy.post("/x", data=WHOLE)
    assert r.status == (502 if status == 401 else status)
    await asyncio.wait_for(tap.ended.wait(), 10)
    assert tap.events[0] == ("start", status) and tap.ends() == [outcome]


async def test_a_stream_dropped_mid_way_ends_as_upstream_failed(aiohttp_client: Any, session: Any,
                                                                upstream_url: str, fake: FakeProvider) -> None:
    fake.override = drops_after(2)
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    r = await proxy.post("/x", data=STREAM)
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()
    await asyncio.wait_for(tap.ended.wait(), 10)
    assert tap.ends() == [Outcome.UPSTREAM_FAILED] and tap.kinds().count("chunk") >= 1


async def test_a_client_gone_mid_stream_ends_as_client_gone(aiohttp_client: Any, session: Any, upstream_url: str,
                                                            fake: FakeProvider) -> None:
    fake.hold_streams()
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    r = await proxy.post("/x", data=STREAM)
    await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    r.close()
    await asyncio.wait_for(tap.ended.wait(), 10)
    fake.release()
    assert tap.ends() == [Outcome.CLIENT_GONE]


async def test_a_late_provider_end_is_completed_and_not_waited_for(aiohttp_client: Any, session: Any,
                                                                   upstream_url: str, fake: FakeProvider) -> None:
    end = asyncio.Event()
    fake.override = late_eof(end)
    tap = RecordingTap()
    proxy = await tapped_proxy(aiohttp_client, session, upstream_url, tap)
    r = await proxy.post("/x", data=STREAM)
    received = await asyncio.wait_for(r.read(), 10)  # the whole response, terminator included, before the end
    assert received == b"".join(sse_chunks(3))
    await asyncio.wait_for(tap.ended.wait(), 10)
    assert tap.ends() == [Outcome.COMPLETED] and not end.is_set()
    end.set()
