"""Admin fixtures: a real proxy app (keystore on the test Postgres/Redis) and its admin listener."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from proxy.app import create_admin_app, create_app
from proxy.config import Config
from proxy.config_loader import load_config
from tests.support.admin import (
    ADMIN_TOKEN,
    AUTH,
    CI_TOKEN,
    CONFIG_TOML,
    MODELS,
    AdminStack,
    Client,
    create,
    error_of,
    expect,
    service_env,
    write_config,
)

# old import paths: import these from tests.support.admin
__all__ = [
    "ADMIN_TOKEN",
    "AUTH",
    "CI_TOKEN",
    "CONFIG_TOML",
    "MODELS",
    "AdminStack",
    "Client",
    "create",
    "error_of",
    "expect",
    "service_env",
    "write_config",
]


@pytest.fixture
def config(tmp_path: Path, database_url: str, redis_url: str, namespace: str) -> Config:
    return load_config(write_config(tmp_path), service_env(database_url, redis_url, namespace))


@pytest.fixture
async def admin_stack(config: Config, pool: asyncpg.Pool, redis: Any, aiohttp_server: Any) -> AdminStack:
    proxy_app = create_app(config)
    proxy = await aiohttp_server(proxy_app)
    admin = await aiohttp_server(create_admin_app(config, proxy_app))
    return AdminStack(config, proxy, admin)


@pytest.fixture
async def api(admin_stack: AdminStack, aiohttp_client: Any) -> Client:
    """A client of the admin listener that sends the default admin token."""
    client: Client = await aiohttp_client(admin_stack.admin, headers=AUTH)
    return client


@pytest.fixture
async def anon(admin_stack: AdminStack, aiohttp_client: Any) -> Client:
    """A client of the admin listener that sends no token unless told."""
    client: Client = await aiohttp_client(admin_stack.admin)
    return client


@pytest.fixture
async def key_object(api: Client) -> AsyncIterator[dict[str, Any]]:
    """A key created through the API, as its JSON object (the request-path suites' `key` is the key string)."""
    yield await create(api, name="fixture-key", account="acme")
