"""The provider misbehaving (SPEC §3): refused connections, stalls before the first byte and mid-stream,
an endless body, 401/429/500. The client always gets a prompt, well-formed answer; streams end."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.support.fakes import FakeProvider, canned, stalling
from tests.support.faults import CHAT, GUARD, Client, Cluster, metric, scrape
from tests.support.procs import free_port

FAST = {"first_byte_timeout_seconds": 1.0, "idle_timeout_seconds": 1.0, "connect_timeout_seconds": 1.0}
STREAM = {"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def test_provider_refusing_connections_is_a_502(cluster: Cluster, client: Client) -> None:
    proc = await cluster.start(provider_base=f"http://127.0.0.1:{free_port()}/v1", upstream=FAST)
    key, _ = await client.issue(proc)
    answer = await client.chat(proc, key)
    assert answer.status == 502
    assert answer.error["type"] == "api_error" and answer.error["code"] == "upstream_unavailable"


async def test_provider_stalling_before_the_first_byte_is_a_504(cluster: Cluster, client: Client,
                                                                fake: FakeProvider) -> None:
    release = asyncio.Event()
    fake.override = stalling(None, release)
    proc = await cluster.start(upstream=FAST)
    key, _ = await client.issue(proc)
    answer = await client.chat(proc, key)
    release.set()
    assert answer.status == 504 and answer.error["code"] == "upstream_timeout"


async def test_provider_stalling_mid_stream_ends_the_stream(cluster: Cluster, client: Client,
                                                           fake: FakeProvider) -> None:
    release = asyncio.Event()
    fake.override = stalling(b'data: {"choices": []}\n\n', release)
    proc = await cluster.start(upstream=FAST)
    key, _ = await client.issue(proc)
    received = b""
    async with asyncio.timeout(GUARD):
        async with client.session.post(proc.url(CHAT), json=STREAM, headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):  # ends visibly broken: no chunked terminator
                async for chunk in r.content.iter_any():
                    received += chunk
    release.set()
    assert received.startswith(b'data: {"choices": []}\n\n') and b"[DONE]" not in received
    assert b'"code":"upstream_timeout"' in received  # an SSE error event in the OpenAI error shape


async def endless(request: web.Request) -> web.StreamResponse:
    """A provider whose answer never ends."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    while True:
        await response.write(b"data: " + b"x" * 1000 + b"\n\n")
        await asyncio.sleep(0.001)


async def test_endless_provider_body_stops_when_the_client_leaves(cluster: Cluster, client: Client,
                                                                  fake: FakeProvider) -> None:
    fake.override = endless
    proc = await cluster.start(upstream=FAST)
    key, _ = await client.issue(proc)
    async with asyncio.timeout(GUARD):
        r = await client.session.post(proc.url(CHAT), json=STREAM, headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200
        got = 0
        while got < 200_000:  # streamed through as it comes, never buffered to the end (there is none)
            got += len(await r.content.readany())
        r.close()
    await asyncio.wait_for(fake.cancelled.wait(), GUARD)  # the provider connection was dropped
    async with asyncio.timeout(GUARD):  # and the proxy let go of the request
        while metric(await scrape(proc), "tokenhub_requests_in_flight") != 0:
            await asyncio.sleep(0.05)


async def test_provider_401_is_never_the_clients_key_being_invalid(cluster: Cluster, client: Client,
                                                                   fake: FakeProvider) -> None:
    fake.override = canned(401, b'{"error": {"message": "Incorrect API key provided: sk-pro****"}}',
                           {"Content-Type": "application/json"})
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    answer = await client.chat(proc, key)
    assert answer.status == 502
    assert answer.error["type"] == "api_error" and answer.error["code"] == "upstream_auth_failed"
    assert b"sk-pro" not in answer.body and "invalid_api_key" not in answer.body.decode()


async def test_provider_429_and_500_pass_through_unchanged(cluster: Cluster, client: Client,
                                                           fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    for status, body, extra in ((429, b'{"error": {"message": "slow down", "type": "rate_limit"}}',
                                 {"Retry-After": "7"}), (500, b'{"error": {"message": "boom"}}', {})):
        fake.override = canned(status, body, {"Content-Type": "application/json"} | extra)
        answer = await client.chat(proc, key)
        assert (answer.status, answer.body) == (status, body)
        assert all(answer.headers.get(k) == v for k, v in extra.items())
