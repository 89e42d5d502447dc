"""Issue 12, case 4 behind a load balancer: `[server] trusted_proxies` makes the client address the real one,
so other clients' wrong secrets never lock a key's holder out even when every request comes from one
balancer address."""

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, CIMultiDictProxy

from keystore import Actor

from proxy.app import create_app
from proxy.config import Config
from proxy.gateway.auth import client_address
from proxy.state import KEYSTORE
from tests.support import FakeClock, eventually, forged

LB = ("10.0.0.0/8",)


@pytest.mark.parametrize(("peer", "xff", "trusted", "expected"), [
    ("203.0.113.9", "198.51.100.1", (), "203.0.113.9"),  # nobody trusted: the TCP peer
    ("203.0.113.9", "198.51.100.1", LB, "203.0.113.9"),  # the peer is no trusted proxy: XFF ignored
    ("10.0.0.2", "198.51.100.1", LB, "198.51.100.1"),
    ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3", LB, "198.51.100.1"),  # what the client wrote is not believed
    ("10.0.0.2", "", LB, "10.0.0.2"),
    ("10.0.0.2", "10.0.0.4, 10.0.0.3", LB, "10.0.0.4"),  # only trusted hops: the furthest one
])
def test_client_address(peer: str, xff: str, trusted: tuple[str, ...], expected: str) -> None:
    headers = CIMultiDictProxy(CIMultiDict({"X-Forwarded-For": xff} if xff else {}))
    assert client_address(peer, headers, trusted) == expected


def chat(key: str, client: str) -> dict[str, Any]:
    return {"data": orjson.dumps({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}),
            "headers": {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                        "X-Forwarded-For": client}}


async def test_forty_clients_behind_one_balancer_do_not_lock_the_holder_out(
        aiohttp_client: Any, pool: Any, config: Config, clock: FakeClock) -> None:
    config = replace(config, server=replace(config.server, trusted_proxies=("127.0.0.1/32",)))
    proxy: TestClient = await aiohttp_client(create_app(config, clock=clock))
    store = proxy.app[KEYSTORE]
    holder = (await store.create(Actor("test"), name="holder")).secret
    # Forty clients, one wrong secret each, all arriving from the balancer's one address (127.0.0.1).
    flood = [asyncio.create_task(proxy.post("/v1/chat/completions", **chat(forged(holder), f"198.51.100.{i}")))
             for i in range(40)]
    await eventually(lambda: store.snapshot().argon2_verifies >= 1)
    answer = await proxy.post("/v1/chat/completions", **chat(holder, "192.0.2.7"))  # the holder's first request
    assert answer.status == 200
    assert {r.status for r in await asyncio.gather(*flood)} == {401}
