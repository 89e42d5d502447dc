"""A non-streamed answer of known length: read whole; only a body still on its way has a deadline to meet."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from proxy.config import Config
from tests.proxy.test_relay import BODY, CHAT, auth, proxy_with
from tests.support import FakeClock
from tests.support.fakes import FakeProvider

WHOLE = b'{"id": "x", "object": "chat.completion", "choices": []}'


def half_then_silence(release: asyncio.Event) -> Any:
    """Headers with the full Content-Length and half the body, then nothing until `release`."""
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(WHOLE)
        await response.prepare(request)
        await response.write(WHOLE[:10])
        await release.wait()
        await response.write(WHOLE[10:])
        return response
    return answer


async def test_a_body_that_stops_after_its_head_is_a_504(aiohttp_client: Any, pool: Any, config: Config,
                                                          clock: FakeClock, key: str, fake: FakeProvider) -> None:
    never = asyncio.Event()
    fake.override = half_then_silence(never)
    proxy = await proxy_with(aiohttp_client, config, clock, idle_timeout_seconds=0.2)
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    body = await r.json()
    assert (r.status, body["error"]["code"]) == (504, "upstream_timeout")
    await asyncio.wait_for(fake.cancelled.wait(), 10)  # and the provider's request was dropped


async def test_a_body_that_arrives_with_its_head_is_relayed_whole(aiohttp_client: Any, pool: Any, config: Config,
                                                                 clock: FakeClock, key: str, fake: FakeProvider) -> None:
    released = asyncio.Event()
    released.set()
    fake.override = half_then_silence(released)
    proxy = await proxy_with(aiohttp_client, config, clock, idle_timeout_seconds=0.2)
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert r.status == 200 and await r.read() == WHOLE and r.headers["Content-Length"] == str(len(WHOLE))
