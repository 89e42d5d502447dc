"""The client side of the request path: body limits, compressed bodies, header filtering, paths,
draining, and what exactly the provider receives."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

from keystore import Actor

from proxy.app import create_app
from proxy.config import Config
from proxy.errors import InvalidRequest
from proxy.gateway.headers import outbound_headers
from proxy.runtime.protocol import GuardedAppRunner
from proxy.state import KEYSTORE, LIFECYCLE
from tests.support import FakeClock
from tests.support.fakes import FakeProvider
from tests.support.proxy import PROVIDER_KEY, IssueKey

CHAT = "/v1/chat/completions"
LIMIT = 64 * 1024  # the fixture config's max_body_bytes


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"} | extra


def padded(size: int) -> bytes:
    head = b'{"model": "demo/echo", "messages": [], "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def error_of(r) -> tuple[int, str, str | None]:  # type: ignore[no-untyped-def]
    body = await r.json()
    return r.status, body["error"]["type"], body["error"]["code"]


async def test_body_at_the_limit_is_accepted(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    r = await proxy.post(CHAT, data=padded(LIMIT), headers=auth(key))
    assert r.status == 200
    assert len(fake.last.json()["pad"]) == LIMIT - 49


async def test_body_over_the_limit_is_413(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    r = await proxy.post(CHAT, data=padded(LIMIT + 1), headers=auth(key))
    assert await error_of(r) == (413, "invalid_request_error", "request_too_large")
    assert fake.received == []


async def test_chunked_body_over_the_limit_is_413(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = padded(5 * LIMIT)
        for i in range(0, len(body), 4096):
            yield body[i:i + 4096]

    r = await proxy.post(CHAT, data=chunks(), headers=auth(key))
    assert r.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert await error_of(r) == (413, "invalid_request_error", "request_too_large")
    assert fake.received == []


async def test_body_that_never_finishes_is_408(aiohttp_client: Any, config: Config, clock: FakeClock,
                                              key: str, fake: FakeProvider) -> None:
    proxy = await aiohttp_client(create_app(replace(config, server=replace(config.server,
                                                                          body_timeout_seconds=0.2)), clock=clock))
    never = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"model": "demo/echo", '
        await never.wait()  # the rest never comes

    r = await proxy.post(CHAT, data=trickle(), headers=auth(key))
    assert await error_of(r) == (408, "invalid_request_error", "request_timeout")
    assert fake.received == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "GZIP", "compress", "x-custom", "identity, gzip"])
async def test_compressed_request_bodies_are_refused(proxy: TestClient, key: str, fake: FakeProvider,
                                                     encoding: str) -> None:
    data = gzip.compress(orjson.dumps({"model": "demo/echo", "messages": []}))
    r = await proxy.post(CHAT, data=data, headers=auth(key, **{"Content-Encoding": encoding}))
    assert await error_of(r) == (415, "invalid_request_error", "unsupported_content_encoding")
    assert fake.received == []


async def test_a_body_that_does_not_decode_as_labelled_is_a_415_without_an_error_log(
        config: Config, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture) -> None:
    # The production runner (aiohttp's test server has its own request handler).
    runner = GuardedAppRunner(create_app(config), head_timeout=5, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        key = (await runner.app[KEYSTORE].create(Actor("test"), name="gz")).secret
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"http://127.0.0.1:{port}{CHAT}", data=b'{"model": "demo/echo"}',
                                headers=auth(key, **{"Content-Encoding": "gzip"}))
            assert r.status == 415 and r.headers["Connection"] == "close"
            await asyncio.sleep(0.2)  # aiohttp skips the unread body after the answer
    finally:
        await runner.cleanup()
    assert [rec for rec in caplog.records if rec.levelno >= logging.ERROR] == []


async def test_undecodable_encoding_is_refused_by_aiohttp_itself(proxy: TestClient, key: str,
                                                                   fake: FakeProvider) -> None:
    # Without the Brotli package aiohttp's parser refuses `br` before any handler runs (a plain-text
    # 400, not our JSON shape); either way the body never reaches a provider.
    r = await proxy.post(CHAT, data=b"\x0b\x02\x80{}\x03", headers=auth(key, **{"Content-Encoding": "br"}))
    assert r.status in (400, 415)
    assert fake.received == []


async def test_draining_instance_refuses_new_requests(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    proxy.app[LIFECYCLE].drain()
    r = await proxy.post(CHAT, json={"model": "demo/echo", "messages": []}, headers=auth(key))
    assert await error_of(r) == (503, "api_error", "service_unavailable")
    assert r.headers["x-request-id"] and r.headers["Retry-After"]
    assert fake.received == []


async def test_provider_receives_what_was_validated(proxy: TestClient, issue: IssueKey, fake: FakeProvider) -> None:
    key = await issue(allowed_models=["demo/echo-mini"])
    raw = b'{"model": "demo/echo", "model": "demo/echo-mini", "messages": [], "n": 1, "t": 0.7}'
    r = await proxy.post(CHAT, data=raw, headers=auth(key))
    assert r.status == 200
    assert fake.last.body.count(b'"model"') == 1  # the duplicate is gone, not relayed for the provider to pick
    assert fake.last.json() == {"model": "echo-mini", "messages": [], "n": 1, "t": 0.7}
    assert fake.last.headers["Content-Length"] == str(len(fake.last.body))


async def test_request_headers_filtered(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    headers = auth(key, **{"Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5",
                           "TE": "trailers", "Proxy-Authorization": "Basic eA==", "Cookie": "s=1",
                           "OpenAI-Organization": "org-1", "X-Custom": "kept", "api-key": key})
    r = await proxy.post(CHAT, json={"model": "demo/echo", "messages": []}, headers=headers)
    assert r.status == 200
    got = fake.last.headers
    assert got["Authorization"] == f"Bearer {PROVIDER_KEY}"
    for name in ("X-Hop", "Keep-Alive", "TE", "Proxy-Authorization", "Cookie", "api-key", "x-api-key",
                 "OpenAI-Organization", "X-Custom"):  # allow-list: tests/proxy/test_headers.py
        assert name not in got, name


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\rb", "a\x00b"])
def test_control_characters_in_forwarded_headers_are_a_400(value: str) -> None:
    incoming = CIMultiDictProxy(CIMultiDict({"User-Agent": value}))
    with pytest.raises(InvalidRequest) as info:
        outbound_headers(incoming, "cred", "rid")
    assert info.value.status == 400 and info.value.param == "User-Agent"


@pytest.mark.parametrize("path", ["/v1/%2e%2e/admin", "/v1/chat/%2e%2e/%2e%2e/x", "/v1/a%2Fb", "/v1/a%0d%0ab",
                                  "/v1/.", "/v1/x/..%2f"])
async def test_paths_that_could_escape_the_base_url_are_404(proxy: TestClient, key: str, fake: FakeProvider,
                                                            path: str) -> None:
    r = await proxy.post(path, json={"model": "demo/echo"}, headers=auth(key))
    assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    assert fake.received == []


async def test_model_retrieve(proxy: TestClient, issue: IssueKey) -> None:
    key = await issue(allowed_models=["demo/echo"])
    ok = await proxy.get("/v1/models/demo/echo", headers=auth(key))
    assert (await ok.json())["id"] == "demo/echo"
    assert (await error_of(await proxy.get("/v1/models/demo/echo-mini", headers=auth(key))))[0] == 403
    assert (await error_of(await proxy.get("/v1/models/demo/nope", headers=auth(key))))[0] == 404
