"""Reservation and reconciliation through the real request path (create_app, the relay, metering's tap):
a month's spend in Redis ends at the metered figure for non-streamed and streamed answers, and keeps
the reservation for an answer the client abandoned; a key without limits makes no Redis call."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from keystore import Actor, KeystoreSettings

from proxy.app import create_app
from proxy.config import Config, ModelPrice, PostgresConfig, ProviderConfig, RedisConfig
from proxy.limits.scripts import layout
from proxy.state import KEYSTORE, LIMITER
from tests.support import RedisMonitor
from tests.support.fakes import FakeProvider

CHAT: dict[str, Any] = {"model": "demo/echo", "messages": [{"role": "user", "content": "one two three"}],
                        "max_tokens": 100}
PRICE = ModelPrice(input=1.0, output=2.0)  # USD per million tokens = micro-USD per token


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def proxy(aiohttp_client: Any, aiohttp_server: Any, pool: asyncpg.Pool, fake: FakeProvider,
                database_url: str, redis_url: str, settings: KeystoreSettings) -> TestClient:
    upstream = await aiohttp_server(fake.app)
    demo = ProviderConfig(name="demo", base_url=str(upstream.make_url("/v1")), models=("echo",),
                          prices={"echo": PRICE})
    dead = ProviderConfig(name="dead", base_url="http://127.0.0.1:1/v1", models=("echo",))  # nothing listens
    config = Config(postgres=PostgresConfig(dsn=database_url), keystore=settings, providers=(demo, dead),
                    redis=RedisConfig(url=redis_url, namespace=settings.namespace, timeout_seconds=1.0))
    return await aiohttp_client(create_app(config))


async def _key(proxy: TestClient, **limits: Any) -> tuple[str, str]:
    issued = await proxy.app[KEYSTORE].create(Actor("test"), name="t", limits=limits or None)
    return issued.key.id, issued.secret


async def _month(redis: Redis, proxy: TestClient, key_id: str) -> tuple[int, int]:
    """The month's spend in Redis once the instance gave back what it holds of the key ahead of use."""
    await proxy.app[LIMITER].give_back()
    tok, usd = await redis.hmget(layout(proxy.app[LIMITER].namespace, key_id).month, "tok", "usd")
    return int(float(tok)), int(float(usd))


async def test_a_non_streamed_answer_is_reconciled_to_its_usage(proxy: TestClient, redis: Redis) -> None:
    key_id, secret = await _key(proxy, tokens_per_month=100_000, usd_per_month=5.0)
    resp = await proxy.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {secret}"})
    usage = (await resp.json())["usage"]
    assert resp.status == 200
    used_in, used_out = usage["prompt_tokens"], usage["completion_tokens"]
    assert await _month(redis, proxy, key_id) == (used_in + used_out, round(used_in * 1.0 + used_out * 2.0))


async def test_a_streamed_answer_is_reconciled_to_its_usage(proxy: TestClient, redis: Redis) -> None:
    key_id, secret = await _key(proxy, tokens_per_month=100_000, requests_per_minute=10)
    resp = await proxy.post("/v1/chat/completions", json=CHAT | {"stream": True},
                            headers={"Authorization": f"Bearer {secret}"})
    body = await resp.text()
    assert resp.status == 200 and '"usage"' not in body  # metering asked for usage and cut it out
    assert resp.headers["x-ratelimit-remaining-requests"] == "9"  # a stream carries the headers too
    assert (await _month(redis, proxy, key_id))[0] == 3 + 3  # the demo echoes: 3 words in, 3 out


async def test_an_abandoned_stream_keeps_its_reservation(proxy: TestClient, redis: Redis,
                                                         fake: FakeProvider) -> None:
    key_id, secret = await _key(proxy, tokens_per_month=100_000)
    fake.hold_streams()
    resp = await proxy.post("/v1/chat/completions", json=CHAT | {"stream": True},
                            headers={"Authorization": f"Bearer {secret}"})
    await resp.content.readany()  # the first chunk arrived; the client leaves
    resp.close()
    await asyncio.wait_for(fake.cancelled.wait(), 10)  # the proxy dropped the provider: handler over
    size = len(fake.last.body)  # what was forwarded (with the usage question metering added)
    assert (await _month(redis, proxy, key_id))[0] == 100 + -(-size // 4)  # max_tokens + input estimate
    fake.release()


async def test_a_request_that_never_left_is_refunded(proxy: TestClient, redis: Redis) -> None:
    key_id, secret = await _key(proxy, tokens_per_month=100_000)
    resp = await proxy.post("/v1/chat/completions", json=CHAT | {"model": "dead/echo"},
                            headers={"Authorization": f"Bearer {secret}"})
    assert resp.status == 502
    assert await _month(redis, proxy, key_id) == (0, 0)  # reserved, then handed back in full


async def test_a_key_without_limits_makes_no_limiter_redis_call(proxy: TestClient, redis_url: str,
                                                                 settings: KeystoreSettings) -> None:
    _, secret = await _key(proxy)
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 200  # warm
    async def call() -> None:
        resp = await proxy.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert resp.status == 200 and "x-ratelimit-limit-requests" not in resp.headers

    async with RedisMonitor(redis_url, int(redis_url.rsplit("/", 1)[1])) as monitor:
        seen = await monitor.commands_during(call, "")  # every connection to this database
    assert not [c for c in seen if f"{settings.namespace}:lim:" in c]
    limited_id, limited = await _key(proxy, requests_per_minute=100)

    async def limited_call() -> None:
        await proxy.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {limited}"})

    async with RedisMonitor(redis_url, int(redis_url.rsplit("/", 1)[1])) as monitor:
        seen = await monitor.commands_during(limited_call, "")
    assert [c for c in seen if f"{{{limited_id}}}" in c]  # the same watch sees a limited key's script
