"""Helpers of the admin tests: a proxy app and its admin listener in-process, the admin token, JSON answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from proxy.config import Config
from tests.support.procs import ADMIN_TOKEN  # the one admin token of every test stack

Client = TestClient[web.Request, web.Application]
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


@dataclass
class AdminStack:
    config: Config
    proxy: TestServer
    admin: TestServer


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
