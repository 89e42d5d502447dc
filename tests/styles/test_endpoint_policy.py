"""The endpoint policy (README "Endpoint policy"): every row of the endpoint table reaches its provider
as the table says (path, method, query string or not), anything else is a 404 before any upstream
contact, providers serve only the families they list, and model-bearing fields that cannot be checked
are refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from keystore import KeystoreSettings

from proxy.config import Config, PostgresConfig, ProviderConfig, RedisConfig
from proxy.gateway.styles import ENDPOINTS
from tests.support.styles import Recorder

RID = "resp_000000000000000000000001"
ALL_OPENAI = ("chat/completions", "completions", "embeddings", "responses", "moderations", "images/generations",
              "audio/speech", "rerank")
M = {"model": "o/m"}
# One row per endpoint of the table: what the client sends, and what the provider must receive.
ROWS = [
    ("POST", "/v1/chat/completions", M, "POST", "/v1/chat/completions"),
    ("POST", "/v1/completions", M, "POST", "/v1/completions"),
    ("POST", "/v1/embeddings", M, "POST", "/v1/embeddings"),
    ("POST", "/v1/responses", M, "POST", "/v1/responses"),
    ("GET", f"/v1/responses/{RID}", None, "GET", f"/v1/responses/{RID}?probe=1"),
    ("DELETE", f"/v1/responses/{RID}", None, "DELETE", f"/v1/responses/{RID}"),
    ("POST", f"/v1/responses/{RID}/cancel", None, "POST", f"/v1/responses/{RID}/cancel"),
    ("GET", f"/v1/responses/{RID}/input_items", None, "GET", f"/v1/responses/{RID}/input_items?probe=1"),
    ("POST", "/v1/moderations", M, "POST", "/v1/moderations"),
    ("POST", "/v1/images/generations", M, "POST", "/v1/images/generations"),
    ("POST", "/v1/audio/speech", M, "POST", "/v1/audio/speech"),
    ("POST", "/v1/rerank", M, "POST", "/v1/rerank"),
    ("POST", "/v1/messages", {"model": "a/m"}, "POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens", {"model": "a/m"}, "POST", "/v1/messages/count_tokens"),
    ("POST", "/openai/deployments/dep-m/chat/completions", {}, "POST",
     "/openai/deployments/dep-m/chat/completions?api-version=v1"),
    ("POST", "/openai/deployments/dep-m/completions", {}, "POST", "/openai/deployments/dep-m/completions?api-version=v1"),
    ("POST", "/openai/deployments/dep-m/embeddings", {}, "POST", "/openai/deployments/dep-m/embeddings?api-version=v1"),
]


class CatchAll(Recorder):
    def __init__(self) -> None:
        super().__init__("")

        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=orjson.dumps({"id": RID, "object": "response"}), content_type="application/json")
        self.app.router.add_route("*", "/{tail:.*}", answer)


@pytest.fixture
async def upstream(aiohttp_server: Any) -> tuple[CatchAll, str]:
    fake = CatchAll()
    return fake, str((await aiohttp_server(fake.app)).make_url("")).rstrip("/")


@pytest.fixture
def config(database_url: str, redis_url: str, settings: KeystoreSettings, upstream: tuple[CatchAll, str]) -> Config:
    url = upstream[1]
    return Config(
        postgres=PostgresConfig(dsn=database_url), keystore=settings,
        redis=RedisConfig(url=redis_url, namespace=settings.namespace, timeout_seconds=1.0),
        providers=(ProviderConfig(name="o", base_url=url + "/v1", models=("m",), endpoints=ALL_OPENAI),
                   ProviderConfig(name="a", base_url=url, models=("m",), api="anthropic"),
                   ProviderConfig(name="z", base_url=url, models=("m",), api="azure", api_version="v1",
                                  deployments={"m": "dep-m"}),
                   ProviderConfig(name="narrow", base_url=url + "/v1", models=("m",), endpoints=("embeddings",))))


def test_the_rows_cover_the_table() -> None:
    assert sorted((m, p) for m, p, *_ in ROWS) == sorted(
        (e.method, e.path.replace("{id}", RID).replace("{deployment}", "dep-m")) for e in ENDPOINTS)


async def _own_the_response(proxy: TestClient, key: str) -> None:
    r = await proxy.post("/v1/responses", json=M, headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200


@pytest.mark.parametrize(("method", "path", "body", "up_method", "up_path"), ROWS, ids=[f"{r[0]} {r[1]}" for r in ROWS])
async def test_each_row_reaches_its_provider_as_the_table_says(
        proxy: TestClient, key: str, upstream: tuple[CatchAll, str], method: str, path: str,
        body: dict[str, Any] | None, up_method: str, up_path: str) -> None:
    fake = upstream[0]
    if "{" not in path and RID in path:
        await _own_the_response(proxy, key)
    r = await proxy.request(method, f"{path}?probe=1", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200, await r.text()
    got = fake.last
    assert (got.method, got.path + (f"?{got.query}" if got.query else "")) == (up_method, up_path)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/batches"), ("POST", "/v1/fine_tuning/jobs"), ("POST", "/v1/unload_lora_adapter"),
    ("POST", "/v1/files"), ("GET", "/v1/files"), ("POST", "/v1/assistants"), ("GET", "/v1/chat/completions"),
    ("POST", "/v1/chat/completions/abc"), ("GET", "/v1/responses"), ("POST", "/openai/deployments/dep-m/batches"),
])
async def test_anything_else_is_refused_before_the_upstream(proxy: TestClient, key: str,
                                                            upstream: tuple[CatchAll, str], method: str,
                                                            path: str) -> None:
    r = await proxy.request(method, path, json=M, headers={"Authorization": f"Bearer {key}"})
    assert r.status in (404, 405) and "error" in await r.json()
    assert upstream[0].received == []


@pytest.mark.parametrize(("path", "model"), [
    ("/v1/chat/completions", "narrow/m"),  # the provider lists only embeddings
    ("/v1/moderations", "z/m"),  # not an endpoint the azure style serves by default
    ("/v1/messages", "o/m"),  # an OpenAI-style model on the Anthropic endpoint
    ("/v1/chat/completions", "a/m"),  # and the other way round
])
async def test_a_provider_serves_only_its_families(proxy: TestClient, key: str, upstream: tuple[CatchAll, str],
                                                   path: str, model: str) -> None:
    r = await proxy.post(path, json={"model": model}, headers={"Authorization": f"Bearer {key}"})
    assert r.status == 404
    assert upstream[0].received == []


@pytest.mark.parametrize(("path", "extra", "param"), [
    ("/v1/chat/completions", {"models": ["o/m", "other/x"]}, "models"),
    ("/v1/completions", {"fallbacks": ["x"]}, "fallbacks"),
    ("/v1/responses", {"conversation": "conv_123"}, "conversation"),
    ("/v1/responses", {"tools": [{"type": "image_generation", "model": "gpt-image-1"}]}, "tools[].model"),
    ("/v1/responses", {"prompt": {"id": "pmpt_1"}}, "prompt"),
    ("/v1/responses", {"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[].type=item_reference"),
    ("/v1/responses", {"previous_response_id": 7}, "previous_response_id"),
    ("/v1/messages", {"model": "a/m", "models": ["a/m"]}, "models"),
])
async def test_fields_that_cannot_be_checked_are_refused(proxy: TestClient, key: str, upstream: tuple[CatchAll, str],
                                                         path: str, extra: dict[str, Any], param: str) -> None:
    r = await proxy.post(path, json=M | extra, headers={"Authorization": f"Bearer {key}"})
    body = await r.json()
    assert r.status == 400
    assert param in str(body)
    assert upstream[0].received == []


async def test_query_string_only_where_the_endpoint_allows(proxy: TestClient, key: str, pool: asyncpg.Pool,
                                                          upstream: tuple[CatchAll, str]) -> None:
    r = await proxy.post("/v1/embeddings?api-version=x&organization=evil", json=M,
                         headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200 and upstream[0].last.query == ""


async def test_ordinary_input_items_pass(proxy: TestClient, key: str, upstream: tuple[CatchAll, str]) -> None:
    items = [{"type": "message", "role": "user", "content": "hi"}, {"type": "function_call_output", "call_id": "c",
                                                                    "output": "{}"}]
    r = await proxy.post("/v1/responses", json=M | {"input": items}, headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200 and upstream[0].last.json()["input"] == items


def test_the_readme_table_is_the_endpoint_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Endpoint policy"):]
    rows = re.findall(r"^\| `(GET|POST|DELETE) (\S+)` \| `([a-z/_]+)`", section, re.MULTILINE)
    assert sorted(rows) == sorted((e.method, e.path, e.family) for e in ENDPOINTS)
