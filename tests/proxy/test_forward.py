"""The request path driven by the real OpenAI SDK: what the client gets back and what the provider got."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp.test_utils import TestClient
from openai import AsyncOpenAI, Omit

from tests.support.fakes import FakeProvider, canned
from tests.support.proxy import PROVIDER_KEY, IssueKey

SDK = Callable[..., AsyncOpenAI]
USER = [{"role": "user", "content": "hello from the test"}]


def assert_clean(fake: FakeProvider, key: str, model: str, credential: str | None = PROVIDER_KEY) -> None:
    """The provider saw its own credential (or none), the rewritten model and never the client's key."""
    got = fake.last
    assert got.json()["model"] == model
    assert got.headers.get("Authorization") == (f"Bearer {credential}" if credential else None)
    for name in ("x-api-key", "api-key"):
        assert name not in got.headers
    assert key not in str(dict(got.headers)) and key.encode() not in got.body


async def test_chat_completion(sdk: SDK, key: str, fake: FakeProvider) -> None:
    answer = await sdk(key).chat.completions.create(model="demo/echo", messages=USER)
    assert answer.choices[0].message.content == "hello from the test"
    assert answer.model == "echo"
    assert fake.last.path == "/v1/chat/completions"
    assert fake.last.json()["messages"] == USER
    assert_clean(fake, key, "echo")


async def test_alias_is_rewritten_to_the_providers_name(sdk: SDK, key: str, fake: FakeProvider) -> None:
    await sdk(key).chat.completions.create(model="chat", messages=USER)
    assert_clean(fake, key, "echo")


async def test_provider_without_credential_gets_no_authorization(sdk: SDK, key: str, fake: FakeProvider) -> None:
    await sdk(key).chat.completions.create(model="open/echo", messages=USER)
    assert_clean(fake, key, "echo", credential=None)


async def test_streamed_chat_arrives_while_the_provider_is_still_sending(
        sdk: SDK, key: str, fake: FakeProvider) -> None:
    fake.hold_streams()  # the provider sends its first chunk, then waits for the test
    stream = await sdk(key).chat.completions.create(model="demo/echo", messages=USER, stream=True)
    chunks = aiter(stream)
    first = await asyncio.wait_for(anext(chunks), 10)
    assert first.choices[0].delta.role == "assistant"
    assert not fake.finished.is_set()  # we hold chunk 1 while the provider has not finished
    fake.release()
    rest = [c async for c in chunks]
    assert "".join(c.choices[0].delta.content or "" for c in rest) == "hello from the test"
    assert rest[-1].choices[0].finish_reason == "stop"
    assert_clean(fake, key, "echo")


async def test_completions_plain_and_streamed(sdk: SDK, key: str, fake: FakeProvider) -> None:
    client = sdk(key)
    plain = await client.completions.create(model="demo/echo-mini", prompt="say this")
    assert plain.choices[0].text == "say this"
    stream = await client.completions.create(model="demo/echo-mini", prompt="say this", stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == "say this"
    assert fake.last.path == "/v1/completions"
    assert_clean(fake, key, "echo-mini")


async def test_embeddings(sdk: SDK, key: str, fake: FakeProvider) -> None:
    result = await sdk(key).embeddings.create(model="demo/embed-small", input=["a", "b"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8 and result.data[0].embedding != result.data[1].embedding
    assert fake.last.path == "/v1/embeddings"
    assert_clean(fake, key, "embed-small")


async def test_models_list_is_filtered_for_a_restricted_key(sdk: SDK, issue: IssueKey, fake: FakeProvider) -> None:
    everything = await issue()
    narrow = await issue(allowed_models=["demo/echo"])
    all_ids = [m.id async for m in sdk(everything).models.list()]
    assert all_ids == ["demo/echo", "demo/echo-mini", "demo/embed-small", "open/echo", "chat"]
    assert [m.id async for m in sdk(narrow).models.list()] == ["demo/echo", "chat"]
    assert fake.received == []  # the list comes from the config, not the provider


async def test_models_list_for_a_provider_restricted_key(sdk: SDK, issue: IssueKey) -> None:
    key = await issue(allowed_providers=["open"])
    assert [m.id async for m in sdk(key).models.list()] == ["open/echo"]
    model = await sdk(key).models.retrieve("open/echo")
    assert model.owned_by == "open"


async def test_key_in_x_api_key(sdk: SDK, key: str, fake: FakeProvider) -> None:
    answer = await sdk("unused").chat.completions.create(
        model="demo/echo", messages=USER, extra_headers={"Authorization": Omit(), "x-api-key": key})
    assert answer.choices[0].message.content == "hello from the test"
    assert_clean(fake, key, "echo")


async def test_key_in_api_key_header(sdk: SDK, key: str, fake: FakeProvider) -> None:
    result = await sdk("unused").embeddings.create(
        model="demo/embed-small", input="x", extra_headers={"Authorization": Omit(), "api-key": key})
    assert len(result.data) == 1
    assert_clean(fake, key, "embed-small")


async def test_same_key_in_two_headers_is_fine(sdk: SDK, key: str, fake: FakeProvider) -> None:
    client = sdk(key, default_headers={"x-api-key": key})
    await client.chat.completions.create(model="demo/echo", messages=USER)
    assert_clean(fake, key, "echo")


async def test_other_json_endpoint_with_a_model_is_404_unless_the_provider_lists_it(
        proxy: TestClient, key: str, fake: FakeProvider) -> None:
    # Endpoint policy (issue 13): a model restriction is not an endpoint restriction. Endpoints
    # outside a provider's `endpoints` never reach it; tests/styles/test_endpoint_policy.py covers the table.
    fake.override = canned(200, b'{"ok": true}', {"Content-Type": "application/json"})
    r = await proxy.post("/v1/moderations?x=1", json={"model": "chat", "input": "hi"},
                         headers={"Authorization": f"Bearer {key}"})
    assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    assert fake.received == []
