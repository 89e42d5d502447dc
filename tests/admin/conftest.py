"""Admin fixtures: a real proxy app (keystore on the test Postgres/Redis) and its admin listener."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from proxy.app import create_admin_app, create_app
from proxy.config import Config
from proxy.config_loader import load_config

Client = TestClient[web.Request, web.Application]
ADMIN_TOKEN = "admin-token-0123456789abcdef"
CI_TOKEN = "ci-token-fedcba9876543210-zz"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MODELS = ["openai/gpt-4o", "openai/gpt-4o-mini", "local/llama-3.1-8b"]

CONFIG_TOML = """
[admin]
token_envs = {{ ci = "TEST_CI_ADMIN_TOKEN" }}

[keystore]
last_used_flush_seconds = {flush}
heartbeat_seconds = 0.5
poll_interval_seconds = 0.2
ping_interval_seconds = 0.5
resubscribe_delay_seconds = 0.1
ack_timeout_seconds = 3.0
argon2_memory_kib = 8192
argon2_time_cost = 1

[logging]
level = "WARNING"
format = "text"

[[providers]]
name = "openai"
base_url = "{openai_url}"
models = ["gpt-4o", "gpt-4o-mini"]

[[providers]]
name = "local"
base_url = "{local_url}"
models = ["llama-3.1-8b"]
"""


def write_config(directory: Path, *, flush: float = 0.3, openai_url: str = "http://127.0.0.1:9/v1",
                 local_url: str = "http://127.0.0.1:9/v1") -> Path:
    path = directory / "tokenhub.toml"
    path.write_text(CONFIG_TOML.format(flush=flush, openai_url=openai_url, local_url=local_url))
    return path


def service_env(database_url: str, redis_url: str, namespace: str, *, with_token: bool = True) -> dict[str, str]:
    env = {"TOKENHUB_POSTGRES__DSN": database_url, "TOKENHUB_REDIS__URL": redis_url,
           "TOKENHUB_REDIS__NAMESPACE": namespace, "TEST_CI_ADMIN_TOKEN": CI_TOKEN}
    if with_token:
        env["TOKENHUB_ADMIN_TOKEN"] = ADMIN_TOKEN
    return env


@pytest.fixture
def config(tmp_path: Path, database_url: str, redis_url: str, namespace: str) -> Config:
    return load_config(write_config(tmp_path), service_env(database_url, redis_url, namespace))


@dataclass
class AdminStack:
    config: Config
    proxy: TestServer
    admin: TestServer


@pytest.fixture
async def stack(config: Config, pool: asyncpg.Pool, redis: Any, aiohttp_server: Any) -> AdminStack:
    proxy_app = create_app(config)
    proxy = await aiohttp_server(proxy_app)
    admin = await aiohttp_server(create_admin_app(config, proxy_app))
    return AdminStack(config, proxy, admin)


@pytest.fixture
async def api(stack: AdminStack, aiohttp_client: Any) -> Client:
    """A client of the admin listener that sends the default admin token."""
    client: Client = await aiohttp_client(stack.admin, headers=AUTH)
    return client


@pytest.fixture
async def anon(stack: AdminStack, aiohttp_client: Any) -> Client:
    """A client of the admin listener that sends no token unless told."""
    client: Client = await aiohttp_client(stack.admin)
    return client


async def expect(resp: ClientResponse, status: int) -> Any:
    """The JSON body of a response that must have `status` (shows the body when it does not)."""
    text = await resp.text()
    assert resp.status == status, f"{resp.method} {resp.url.path}: {resp.status} {text}"
    return await resp.json()


async def create(api: Client, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "test"} | fields
    return await expect(await api.post("/admin/keys", json=body), 201)  # type: ignore[no-any-return]


def error_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
async def key(api: Client) -> AsyncIterator[dict[str, Any]]:
    yield await create(api, name="fixture-key", account="acme")
