"""The request path under the production runner: real `tokenhub serve` processes sharing Postgres and
Redis with the test, a fake provider in the test process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from keystore import Actor, KeyStore, keygen

from tests.support import StoreFactory
from tests.support.fakes import FakeProvider
from tests.support.procs import ServeProcess, provider, run_migrate, serving, write_config

pytestmark = pytest.mark.slow
PROVIDER_ENV = {"DEMO_KEY": "sk-provider-secret-for-processes"}
CHAT = "/v1/chat/completions"
BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hello processes"}]}
ConfigFactory = Callable[[str], Path]


@pytest.fixture
def make_config(tmp_path: Path, database_url: str, redis_url: str, namespace: str, provider_url: str,
                pool: object) -> ConfigFactory:
    """Config files for serve processes (each with its own free ports): the test's database (migrated
    and truncated by `pool`), the test's Redis namespace, the fake provider."""
    def make(name: str) -> Path:
        return write_config(tmp_path, name=f"{name}.toml", database_url=database_url, redis_url=redis_url,
                            namespace=namespace,
                            providers=[provider("demo", provider_url, ["echo"], api_key_env="DEMO_KEY")])
    return make


async def chat_status(session: aiohttp.ClientSession, proc: ServeProcess, key: str) -> int:
    async with session.post(proc.url(CHAT), json=BODY, headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status


async def test_two_instances_share_keys_and_revocation(make_config: ConfigFactory, make_store: StoreFactory,
                                                       fake: FakeProvider) -> None:
    first, second = make_config("one"), make_config("two")
    run_migrate(first, PROVIDER_ENV)  # idempotent: the fixture already brought the database up to date
    store: KeyStore = await make_store()
    key = (await store.create(Actor("test"), name="shared")).secret
    async with serving(first, PROVIDER_ENV) as one, serving(second, PROVIDER_ENV) as two, \
            aiohttp.ClientSession() as session:
        assert [await chat_status(session, p, key) for p in (one, two)] == [200, 200]
        await wait_for_instances(store, 3)  # both servers and the test's own store heartbeat in Redis
        _, propagation = await store.revoke(Actor("test"), keygen.parse(key)[0])
        assert propagation.confirmed == propagation.instances >= 3
        assert [await chat_status(session, p, key) for p in (one, two)] == [401, 401]
    assert fake.last.headers["Authorization"] == f"Bearer {PROVIDER_ENV['DEMO_KEY']}"
    assert key not in str(dict(fake.last.headers))


async def wait_for_instances(store: KeyStore, count: int, timeout: float = 15) -> None:
    async def poll() -> None:
        while len(await store.live_instances()) < count:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(poll(), timeout)


async def test_client_disconnect_cancels_the_provider_under_the_production_runner(
        make_config: ConfigFactory, make_store: StoreFactory, fake: FakeProvider) -> None:
    store: KeyStore = await make_store()
    key = (await store.create(Actor("test"), name="streamer")).secret
    fake.hold_streams()  # the provider sends one chunk, then waits: a long generation
    async with serving(make_config("cancel"), PROVIDER_ENV) as proc, aiohttp.ClientSession() as session:
        r = await session.post(proc.url(CHAT), json=BODY | {"stream": True},
                               headers={"Authorization": f"Bearer {key}"})
        assert r.status == 200
        await asyncio.wait_for(r.content.readuntil(b"\n\n"), 15)  # first chunk relayed
        r.close()  # the client hangs up mid-stream
        await asyncio.wait_for(fake.cancelled.wait(), 15)  # generous guard, not a timing assertion
        assert not fake.finished.is_set()
        async with session.get(proc.url("/healthz")) as health:
            assert health.status == 200  # and the server is fine
