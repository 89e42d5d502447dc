"""The provider side of the request path: passthrough, 502/504 mapping, streaming, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from proxy.app import create_app
from proxy.config import Config
from tests.support import FakeClock
from tests.support.fakes import FakeProvider, canned, stalling
from tests.support.procs import free_port

CHAT = "/v1/chat/completions"
BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "one two three"}]}
STREAM = BODY | {"stream": True}


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} | extra


async def read_to_the_end(r: Any) -> tuple[bytes, bool]:
    """Everything the client got, and whether the body ended broken (no proper end of message)."""
    got = bytearray()
    try:
        while chunk := await asyncio.wait_for(r.content.readany(), 10):
            got += chunk
    except aiohttp.ClientPayloadError:
        return bytes(got), True
    return bytes(got), False


async def proxy_with(aiohttp_client: Any, config: Config, clock: FakeClock, **upstream: Any) -> TestClient:
    limits = replace(config.upstream, **upstream)
    return await aiohttp_client(create_app(replace(config, upstream=limits), clock=clock))


@pytest.mark.parametrize("status", [400, 403, 404, 422, 429, 500, 503])
async def test_upstream_errors_pass_through_unchanged(proxy: TestClient, key: str, fake: FakeProvider,
                                                     status: int) -> None:
    raw = b'{"error": {"message": "provider says no", "type": "x", "param": null, "code": "y"}, "extra": 1}'
    fake.override = canned(status, raw, {"Content-Type": "application/json", "Retry-After": "7"})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert (r.status, await r.read()) == (status, raw)
    assert r.headers["Retry-After"] == "7" and r.headers["x-request-id"]


async def test_upstream_401_is_not_shown_as_the_clients_key_being_invalid(
        proxy: TestClient, key: str, fake: FakeProvider) -> None:
    fake.override = canned(401, b'{"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}',
                           {"Content-Type": "application/json"})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    body = await r.json()
    assert r.status == 502
    assert (body["error"]["type"], body["error"]["code"]) == ("api_error", "upstream_auth_failed")
    assert "not a problem with your API key" in body["error"]["message"]


async def test_provider_refusing_connections_is_502(aiohttp_client: Any, pool: Any, config: Config,
                                                   clock: FakeClock, key: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    providers = tuple(replace(p, base_url=dead) for p in config.providers)
    proxy = await aiohttp_client(create_app(replace(config, providers=providers), clock=clock))
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    body = await r.json()
    assert (r.status, body["error"]["type"], body["error"]["code"]) == (502, "api_error", "upstream_unavailable")


async def test_no_first_byte_in_time_is_504(aiohttp_client: Any, pool: Any, config: Config, clock: FakeClock,
                                            key: str, fake: FakeProvider) -> None:
    never = asyncio.Event()
    fake.override = stalling(None, never)
    proxy = await proxy_with(aiohttp_client, config, clock, first_byte_timeout_seconds=0.2)
    r = await proxy.post(CHAT, json=STREAM, headers=auth(key))
    body = await r.json()
    assert (r.status, body["error"]["type"], body["error"]["code"]) == (504, "api_error", "upstream_timeout")
    await asyncio.wait_for(fake.cancelled.wait(), 10)  # and the provider's request was dropped


async def test_idle_provider_mid_stream_ends_the_stream_and_drops_the_provider(
        aiohttp_client: Any, pool: Any, config: Config, clock: FakeClock, key: str, fake: FakeProvider) -> None:
    never = asyncio.Event()
    fake.override = stalling(b'data: {"n": 1}\n\n', never)
    proxy = await proxy_with(aiohttp_client, config, clock, idle_timeout_seconds=0.2)
    r = await proxy.post(CHAT, json=STREAM, headers=auth(key))
    assert r.status == 200 and r.headers["x-request-id"]
    received, broken = await read_to_the_end(r)
    assert broken  # no chunked terminator: every client sees the stream failed
    assert received.startswith(b'data: {"n": 1}\n\n') and b"[DONE]" not in received
    error = orjson.loads(received.rsplit(b"data: ", 1)[1])["error"]
    assert (error["type"], error["code"]) == ("api_error", "upstream_timeout")
    await asyncio.wait_for(fake.cancelled.wait(), 10)


async def test_stream_is_relayed_chunk_by_chunk_with_request_id(proxy: TestClient, key: str,
                                                                fake: FakeProvider) -> None:
    fake.hold_streams()
    r = await proxy.post(CHAT, json=STREAM, headers=auth(key, **{"X-Request-ID": "trace-42"}))
    assert r.headers["x-request-id"] == "trace-42"
    assert r.headers["Content-Type"].startswith("text/event-stream")
    first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    assert orjson.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
    assert not fake.finished.is_set()
    fake.release()
    assert (await r.read()).endswith(b"data: [DONE]\n\n")
    assert fake.last.headers["X-Request-ID"] == "trace-42"  # the provider's logs can be joined to ours


async def test_client_disconnect_cancels_the_provider_request(proxy: TestClient, key: str,
                                                              fake: FakeProvider) -> None:
    fake.hold_streams()
    r = await proxy.post(CHAT, json=STREAM, headers=auth(key))
    await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    r.close()  # the client goes away mid-stream
    await asyncio.wait_for(fake.cancelled.wait(), 10)
    assert not fake.finished.is_set()


async def test_compressed_responses_pass_through_undecoded(proxy: TestClient, key: str,
                                                           fake: FakeProvider) -> None:
    packed = gzip.compress(b'{"id": "x", "object": "chat.completion"}')
    fake.override = canned(200, packed, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key), auto_decompress=False)
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Length"] == str(len(packed))
    assert await r.read() == packed


async def test_hop_by_hop_response_headers_are_dropped(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    fake.override = canned(200, b"{}", {
        "Content-Type": "application/json", "Connection": "keep-alive, X-Hop", "X-Hop": "secret",
        "Keep-Alive": "timeout=5", "Proxy-Authenticate": "Basic", "Set-Cookie": "s=1", "Cache-Control": "no-store"})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    for name in ("X-Hop", "Keep-Alive", "Proxy-Authenticate", "Set-Cookie"):
        assert name not in r.headers
