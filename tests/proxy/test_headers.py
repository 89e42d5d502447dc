"""Headers by allow-list both ways (each row of the README tables), the provider's request id kept,
redirects refused, inbound request ids only in a safe shape, one identity Content-Encoding at most,
JSON nesting bounded. Against the recording fake provider, through `create_app()`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from proxy.gateway.body import MAX_DEPTH
from proxy.gateway.headers import FORWARDED_REQUEST_HEADERS, RETURNED_RESPONSE_HEADERS
from tests.support.fakes import FakeProvider, canned
from tests.support.upstreams import redirect

CHAT = "/v1/chat/completions"
BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
# README "Headers sent to the provider": every row, with a value to send.
SENT = {"Accept": "application/json", "Accept-Encoding": "gzip", "User-Agent": "OpenAI/Python 1.0",
        "OpenAI-Beta": "assistants=v2", "anthropic-beta": "tools-2024", "anthropic-version": "2023-06-01",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "a=1"}
# What must never reach the provider (the operator's account, routing overrides, credentials).
NOT_SENT = {"OpenAI-Organization": "org-x", "OpenAI-Project": "proj-x", "X-HTTP-Method-Override": "DELETE",
            "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin", "x_api_key": "th-x", "Idempotency-Key": "k1",
            "Cookie": "s=1", "X-Forwarded-For": "10.0.0.1", "Forwarded": "for=10.0.0.1", "X-Custom": "1",
            "Proxy-Authorization": "Basic eA==", "api-key": "", "x-api-key": ""}
# README "Headers returned to the client": every row, with a value the provider sends.
RETURNED = {"Cache-Control": "no-cache", "Retry-After": "3", "retry-after-ms": "3000",
            "openai-processing-ms": "12", "openai-version": "2020-10-01"}
# The operator's account details a provider (or LiteLLM in front of it) sends back.
NOT_RETURNED = {"openai-organization": "org-op", "openai-project": "proj-op",
                "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-tokens": "999",
                "x-litellm-key-spend": "12.5", "x-litellm-response-cost": "0.01", "llm_provider-x": "1",
                "anthropic-ratelimit-requests-limit": "50", "Set-Cookie": "s=1", "X-Custom": "1",
                "azureml-model-deployment": "d1", "x-ms-region": "eastus"}


def auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} | extra


def test_the_tables_cover_the_allow_lists() -> None:
    assert {n.lower() for n in SENT} == FORWARDED_REQUEST_HEADERS
    assert {n.lower() for n in RETURNED} | {"content-type", "content-encoding"} == RETURNED_RESPONSE_HEADERS


@pytest.mark.parametrize("name", sorted(SENT))
async def test_allowed_request_header_reaches_the_provider(proxy: TestClient, key: str, fake: FakeProvider,
                                                           name: str) -> None:
    r = await proxy.post(CHAT, json=BODY, headers=auth(key, **{name: SENT[name]}))
    assert r.status == 200 and fake.last.headers[name] == SENT[name]


@pytest.mark.parametrize("name", sorted(NOT_SENT))
async def test_other_request_headers_do_not(proxy: TestClient, key: str, fake: FakeProvider, name: str) -> None:
    value = key if name in ("api-key", "x-api-key") else NOT_SENT[name]  # the same key twice is one credential
    r = await proxy.post(CHAT, json=BODY, headers=auth(key, **{name: value}))
    assert r.status == 200 and name not in fake.last.headers


@pytest.mark.parametrize("name", sorted(RETURNED))
async def test_allowed_response_header_reaches_the_client(proxy: TestClient, key: str, fake: FakeProvider,
                                                          name: str) -> None:
    fake.override = canned(200, b"{}", {"Content-Type": "application/json", name: RETURNED[name]})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert r.status == 200 and r.headers[name] == RETURNED[name]


@pytest.mark.parametrize("name", sorted(NOT_RETURNED))
async def test_the_operators_account_headers_do_not(proxy: TestClient, key: str, fake: FakeProvider,
                                                    name: str) -> None:
    fake.override = canned(200, b"{}", {"Content-Type": "application/json", name: NOT_RETURNED[name]})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key))
    assert r.status == 200 and name not in r.headers


@pytest.mark.parametrize("provider_header", ["x-request-id", "request-id", "apim-request-id"])
async def test_the_providers_request_id_is_kept_as_its_own_header(proxy: TestClient, key: str, fake: FakeProvider,
                                                                  provider_header: str) -> None:
    fake.override = canned(200, b"{}", {"Content-Type": "application/json", provider_header: "req_upstream_1"})
    r = await proxy.post(CHAT, json=BODY, headers=auth(key, **{"X-Request-ID": "ours-1"}))
    assert r.headers["x-upstream-request-id"] == "req_upstream_1"
    assert r.headers["x-request-id"] == "ours-1"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_provider_redirect_is_neither_followed_nor_relayed(proxy: TestClient, key: str, fake: FakeProvider,
                                                                  aiohttp_server: Any, status: int) -> None:
    elsewhere = FakeProvider()
    other = await aiohttp_server(elsewhere.app)
    fake.override = redirect(str(other.make_url("/v1/chat/completions")), status)
    r = await proxy.post(CHAT, json=BODY, headers=auth(key), allow_redirects=False)
    body = await r.json()
    assert (r.status, body["error"]["code"]) == (502, "upstream_redirect")
    assert "Location" not in r.headers and elsewhere.received == []


@pytest.mark.parametrize("inbound, kept", [
    ("trace-42", True), ("0f8fad5b-d9cb-469f-a165-70867728950e", True), ("5e91bf1a2b3c4d5e6f708192a3b4c5d6", True),
    ("th-abcdefgh", False), ("TH-x", False), ("sk-proj-abc", False), ("Bearer-x", False),
    ("aB3dE5gH7jK9mN1pQ3sT5vX7", False),  # a long mixed-case alphanumeric run: secret-shaped
    ("x" * 129, False), ("a b", False), ("", False),
])
async def test_inbound_request_ids_only_in_a_safe_shape(proxy: TestClient, key: str, fake: FakeProvider,
                                                        inbound: str, kept: bool) -> None:
    r = await proxy.post(CHAT, json=BODY, headers=auth(key, **{"X-Request-ID": inbound}))
    assert r.status == 200
    assert (r.headers["x-request-id"] == inbound) is kept
    assert fake.last.headers["X-Request-ID"] == r.headers["x-request-id"]


async def test_a_real_key_sent_as_request_id_is_not_echoed(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    r = await proxy.post(CHAT, json=BODY, headers=auth(key, **{"X-Request-ID": key}))
    assert r.status == 200 and key not in r.headers["x-request-id"]
    assert key not in fake.last.headers["X-Request-ID"]


@pytest.mark.parametrize("encodings, status", [
    (["identity"], 200), (["identity", "gzip"], 415), (["identity", "identity"], 415), (["identity, gzip"], 415),
])
async def test_only_a_single_identity_content_encoding(proxy: TestClient, key: str, fake: FakeProvider,
                                                       encodings: list[str], status: int) -> None:
    headers = CIMultiDict(auth(key, **{"Content-Type": "application/json"}))
    for value in encodings:
        headers.add("Content-Encoding", value)
    sent = len(fake.received)
    r = await proxy.post(CHAT, data=orjson.dumps(BODY), headers=headers)
    assert r.status == status
    assert len(fake.received) == sent + (status == 200)


def nested(depth: int) -> bytes:
    return b'{"model": "demo/echo", "messages": [], "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth, status", [(MAX_DEPTH, 200), (MAX_DEPTH + 1, 400), (300, 400), (5000, 400)])
async def test_json_nesting_is_bounded(proxy: TestClient, key: str, fake: FakeProvider, depth: int,
                                       status: int) -> None:
    r = await proxy.post(CHAT, data=nested(depth), headers=auth(key, **{"Content-Type": "application/json"}))
    assert r.status == status
    if status == 400:
        assert (await r.json())["error"]["type"] == "invalid_request_error"
