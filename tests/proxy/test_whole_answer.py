"""A non-streamed answer of known length: read whole; only a body still on its way has a deadline to meet."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from keystore import KeystoreSettings

from proxy.app import create_app
from proxy.config import Config
from tests.proxy.test_relay import BODY, CHAT, auth, proxy_with
from tests.support import FakeClock
from tests.support.fakes import FakeProvider, canned
from tests.support.proxy import proxy_config

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


async def test_a_providers_cookies_never_reach_it_again(aiohttp_client: Any, pool: Any, database_url: str,
                                                        redis_url: str, settings: KeystoreSettings, clock: FakeClock,
                                                        provider_url: str, key: str, fake: FakeProvider) -> None:
    # A shared client session with a cookie jar would keep a provider's Set-Cookie (say, a load
    # balancer's, set on one client's request) and send it with every later request of every client:
    # a header on no allow-list, carrying state from one client's answer into another's request.
    # (aiohttp's jar ignores cookies of IP hosts: the provider is addressed by name, as real ones are.)
    named = provider_url.replace("127.0.0.1", "localhost")
    proxy = await aiohttp_client(create_app(proxy_config(database_url, redis_url, settings, named), clock=clock))
    fake.override = canned(200, WHOLE, {"Content-Type": "application/json", "Set-Cookie": "lb=one; Path=/"})
    first = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert first.status == 200 and "Set-Cookie" not in first.headers
    fake.override = None
    second = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert second.status == 200 and "Cookie" not in fake.last.headers
