"""Hostile input through an HTTP client against a real `tokenhub serve`: bad keys, bad bodies. Each one
is a clear 4xx in the error shape (SPEC §3), never a 500, and nothing reaches the provider."""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.support.fakes import FakeProvider
from tests.support.faults import CHAT, Client, Cluster

LIMIT = 64 * 1024
CHAT_BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}

BAD_KEYS = {  # name -> make(valid key) -> headers
    "missing": lambda k: {},
    "empty bearer": lambda k: {"Authorization": "Bearer "},
    "basic scheme": lambda k: {"Authorization": f"Basic {k}"},
    "garbage": lambda k: {"Authorization": "Bearer hello"},
    "other vendor": lambda k: {"Authorization": "Bearer sk-0123456789abcdef"},
    "truncated": lambda k: {"Authorization": f"Bearer {k[:-1]}"},
    "bad checksum": lambda k: {"Authorization": f"Bearer {k[:-1]}{'A' if k[-1] != 'A' else 'B'}"},
    "wrong id": lambda k: {"Authorization": f"Bearer th-{'Z' * 12}{k[15:]}"},
    "over-long": lambda k: {"Authorization": f"Bearer {k}{'x' * 6000}"},
    # the second key differs in its last character whatever that character is (1 in 62 keys end in "0")
    "two different keys": lambda k: {"Authorization": f"Bearer {k}", "x-api-key": k[:-1] + ("1" if k[-1] == "0" else "0")},
    "key and garbage": lambda k: {"api-key": k, "x-api-key": "nonsense"},
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
async def test_bad_keys_are_401(case: str, cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    answer = await client.call("POST", proc.url(CHAT), json=CHAT_BODY, headers=BAD_KEYS[case](key))
    assert answer.status == 401
    assert (answer.error["type"], answer.error["code"]) == ("authentication_error", "invalid_api_key")
    assert fake.received == []


async def test_a_key_in_the_query_string_does_not_authenticate_and_is_not_logged(
        cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc)
    for name in ("key", "api_key", "api-key", "authorization"):
        answer = await client.call("POST", proc.url(f"{CHAT}?{name}={key}"), json=CHAT_BODY)
        assert answer.status == 401 and answer.error["code"] == "invalid_api_key"
    assert (await client.call("GET", proc.url(f"/v1/models?key={key}"), key=key)).status == 200
    assert fake.received == []
    await proc.stop()  # flushes its log
    assert key not in proc.log() and "POST /v1/chat/completions 401" in proc.log()


BAD_BODIES = {  # name -> (raw body, status, code or None)
    "invalid json": (b'{"model": "demo/echo",', 400, None),
    "not an object": (b'["demo/echo"]', 400, None),
    "model missing": (b'{"messages": []}', 400, None),
    "model not a string": (b'{"model": ["demo/echo"]}', 400, None),
    "model null": (b'{"model": null}', 400, None),
    "model huge": (orjson.dumps({"model": "demo/" + "x" * 50_000}), 404, "model_not_found"),
    "model with crlf": (orjson.dumps({"model": "demo/echo\r\nX-Injected: yes"}), 404, "model_not_found"),
    "model with nul": (orjson.dumps({"model": "demo/echo\u0000"}), 404, "model_not_found"),
    "invalid utf-8": (b'{"model": "demo/\xff\xfe"}', 400, None),
    "deeply nested": (b"{\"model\": \"demo/echo\", \"x\": " + b"[" * 20_000 + b"]" * 20_000 + b"}", 400, None),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_bad_bodies_are_4xx(case: str, cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    raw, status, code = BAD_BODIES[case]
    proc = await cluster.start(server={"max_body_bytes": LIMIT})
    key, _ = await client.issue(proc)
    answer = await client.call("POST", proc.url(CHAT), key=key, data=raw,
                               headers={"Content-Type": "application/json"})
    assert answer.status == status and len(answer.body) < 2000
    assert answer.error["type"] in ("invalid_request_error", "not_found_error")
    assert code is None or answer.error["code"] == code
    assert fake.received == []


async def test_duplicate_model_keys_cannot_smuggle_a_model(cluster: Cluster, client: Client,
                                                           fake: FakeProvider) -> None:
    proc = await cluster.start()
    key, _ = await client.issue(proc, allowed_models=["demo/echo"])
    sneaky = b'{"model": "demo/echo", "model": "demo/echo-mini", "messages": []}'
    answer = await client.call("POST", proc.url(CHAT), key=key, data=sneaky,
                               headers={"Content-Type": "application/json"})
    assert answer.status == 403 and answer.error["code"] == "model_not_allowed" and fake.received == []
    allowed_last = b'{"model": "demo/echo-mini", "model": "demo/echo", "messages": []}'
    answer = await client.call("POST", proc.url(CHAT), key=key, data=allowed_last,
                               headers={"Content-Type": "application/json"})
    assert answer.status == 200
    assert fake.last.body.count(b'"model"') == 1 and fake.last.json()["model"] == "echo"


async def test_oversized_bodies_are_413_with_and_without_content_length(
        cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    proc = await cluster.start(server={"max_body_bytes": LIMIT})
    key, _ = await client.issue(proc)
    big = orjson.dumps(CHAT_BODY | {"pad": "x" * (2 * LIMIT)})

    async def chunks():  # no Content-Length: chunked transfer encoding
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    for data in (big, chunks()):
        answer = await client.call("POST", proc.url(CHAT), key=key, data=data,
                                   headers={"Content-Type": "application/json"})
        assert answer.status == 413 and answer.error["code"] == "request_too_large"
    assert fake.received == []


async def test_a_gzip_bomb_is_refused_unopened(cluster: Cluster, client: Client, fake: FakeProvider) -> None:
    proc = await cluster.start(server={"max_body_bytes": LIMIT})
    key, _ = await client.issue(proc)
    bomb = gzip.compress(b'{"model": "demo/echo", "pad": "' + b"0" * 50_000_000 + b'"}')
    assert len(bomb) < LIMIT  # small on the wire, 50 MB once opened
    answer = await client.call("POST", proc.url(CHAT), key=key, data=bomb,
                               headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert answer.status == 415 and answer.error["type"] == "invalid_request_error"
    assert fake.received == []
