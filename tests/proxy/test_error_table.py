"""Every row of SPEC §3's error table, through the real app, keystore, Postgres and Redis. In every case
the provider receives nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from keystore import Actor, keygen

from proxy.app import create_app
from proxy.config import Config, PostgresConfig
from proxy.state import KEYSTORE
from tests.support import FakeClock, forged
from tests.support.fakes import FakeProvider
from tests.support.procs import free_port
from tests.support.proxy import IssueKey

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]
Headers = list[tuple[str, str]]


def bearer(key: str) -> Headers:
    return [("Authorization", f"Bearer {key}")]


async def post(proxy: TestClient, headers: Headers, body: Any = None, raw: bytes | None = None) -> ClientResponse:
    data = raw if raw is not None else orjson.dumps(body or {"model": "demo/echo", "messages": MESSAGES})
    return await proxy.post(CHAT, data=data, headers=CIMultiDict(headers + [("Content-Type", "application/json")]))


async def assert_error(r: ClientResponse, status: int, error_type: str, code: str | None) -> dict[str, Any]:
    body = await r.json()
    assert (r.status, body["error"]["type"], body["error"]["code"]) == (status, error_type, code), body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert r.headers["x-request-id"]
    return body


AUTH_FAILURES: dict[str, Callable[[str], Headers]] = {
    "missing": lambda key: [],
    "malformed": lambda key: bearer("th-garbage"),
    "bad checksum": lambda key: bearer(key[:-1] + ("A" if key[-1] != "A" else "B")),
    "not a bearer scheme": lambda key: [("Authorization", f"Basic {key}")],
    "empty bearer": lambda key: [("Authorization", "Bearer ")],
    "unknown key id": lambda key: bearer(keygen.mint()[0]),
    "wrong secret": lambda key: bearer(forged(key)),
    "two different keys": lambda key: bearer(key) + [("x-api-key", keygen.mint()[0])],
    "duplicate Authorization headers": lambda key: bearer(key) + bearer(keygen.mint()[0]),
    "x-api-key and api-key differ": lambda key: [("x-api-key", key), ("api-key", forged(key))],
}


@pytest.mark.parametrize("headers", AUTH_FAILURES.values(), ids=AUTH_FAILURES.keys())
async def test_401_bad_or_missing_key(proxy: TestClient, key: str, fake: FakeProvider,
                                      headers: Callable[[str], Headers]) -> None:
    body = await assert_error(await post(proxy, headers(key)), 401, "authentication_error", "invalid_api_key")
    assert "has expired" not in body["error"]["message"] and "has been revoked" not in body["error"]["message"]
    assert key not in body["error"]["message"]
    assert fake.received == []


async def test_401_revoked_key_even_when_warm(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    assert (await post(proxy, bearer(key))).status == 200  # now cached in-process
    await proxy.app[KEYSTORE].revoke(Actor("test"), keygen.parse(key)[0])
    body = await assert_error(await post(proxy, bearer(key)), 401, "authentication_error", "invalid_api_key")
    assert "has been revoked" in body["error"]["message"]
    assert len(fake.received) == 1


async def test_401_key_that_expires_while_its_cache_entry_is_warm(
        proxy: TestClient, issue: IssueKey, clock: FakeClock, fake: FakeProvider) -> None:
    key = await issue(expires_at=clock.now() + timedelta(seconds=30))
    assert (await post(proxy, bearer(key))).status == 200
    clock.advance(31)
    body = await assert_error(await post(proxy, bearer(key)), 401, "authentication_error", "invalid_api_key")
    assert "has expired" in body["error"]["message"]
    assert len(fake.received) == 1


FORBIDDEN = {
    "model not in allow-list": ({"allowed_models": ["demo/echo-mini"]}, "demo/echo"),
    "provider-restricted key": ({"allowed_providers": ["open"]}, "demo/echo"),
    "alias to a forbidden model": ({"allowed_models": ["open/echo"]}, "chat"),
    "both lists, model outside": ({"allowed_providers": ["demo"], "allowed_models": ["demo/echo"]}, "demo/echo-mini"),
}


@pytest.mark.parametrize(("restriction", "model"), FORBIDDEN.values(), ids=FORBIDDEN.keys())
async def test_403_model_or_provider_not_allowed(proxy: TestClient, issue: IssueKey, fake: FakeProvider,
                                                 restriction: dict[str, list[str]], model: str) -> None:
    key = await issue(**restriction)
    r = await post(proxy, bearer(key), {"model": model, "messages": MESSAGES})
    body = await assert_error(r, 403, "permission_error", "model_not_allowed")
    for allowed in restriction.values():
        assert not any(name in body["error"]["message"] for name in allowed)  # the allow-list stays secret
    assert fake.received == []


async def test_403_duplicate_model_keys_cannot_smuggle_a_model(proxy: TestClient, issue: IssueKey,
                                                               fake: FakeProvider) -> None:
    key = await issue(allowed_models=["demo/echo-mini"])
    raw = b'{"model": "demo/echo-mini", "model": "demo/echo", "messages": []}'
    await assert_error(await post(proxy, bearer(key), raw=raw), 403, "permission_error", "model_not_allowed")
    assert fake.received == []


@pytest.mark.parametrize("model", ["demo/nope", "nope", "open/echo-mini", "demo/", "/echo", ""])
async def test_404_unknown_model(proxy: TestClient, key: str, fake: FakeProvider, model: str) -> None:
    r = await post(proxy, bearer(key), {"model": model, "messages": MESSAGES})
    body = await assert_error(r, 404, "not_found_error", "model_not_found")
    assert body["error"]["param"] == "model"
    assert fake.received == []


BAD_BODIES = {
    "not JSON": b"{'model': 'demo/echo'}",
    "empty body": b"",
    "truncated JSON": b'{"model": "demo/echo"',
    "JSON array": b'[{"model": "demo/echo"}]',
    "JSON string": b'"demo/echo"',
    "missing model": b'{"messages": []}',
    "model is null": b'{"model": null}',
    "model is a number": b'{"model": 4}',
    "model is a list": b'{"model": ["demo/echo"]}',
    "invalid UTF-8": b'{"model": "demo/echo\xff"}',
}


@pytest.mark.parametrize("raw", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_400_bad_json_or_model(proxy: TestClient, key: str, fake: FakeProvider, raw: bytes) -> None:
    await assert_error(await post(proxy, bearer(key), raw=raw), 400, "invalid_request_error", None)
    assert fake.received == []


async def test_503_keystore_unreachable_for_a_key_never_seen(
        aiohttp_client: Any, config: Config, clock: FakeClock, fake: FakeProvider) -> None:
    dead = PostgresConfig(dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
                          timeout_seconds=1.0, connect_timeout_seconds=1.0)
    proxy = await aiohttp_client(create_app(Config(**{**_fields(config), "postgres": dead}), clock=clock))
    r = await post(proxy, bearer(keygen.mint()[0]))
    await assert_error(r, 503, "api_error", "service_unavailable")
    assert r.headers["Retry-After"]
    assert fake.received == []


def _fields(config: Config) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}
