"""The Anthropic Messages style through the proxy, driven by the real `anthropic` SDK against a
recording fake Anthropic upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from proxy.state import METER
from tests.support.styles import ANTHROPIC_KEY, FakeAnthropic, Issue

Clients = dict[str, Callable[..., Any]]
SDK_VERSION = anthropic.AsyncAnthropic(api_key="x").default_headers["anthropic-version"]
HELLO = [{"role": "user", "content": "hello from the anthropic test"}]


def assert_clean(fake: FakeAnthropic, key: str, version: str | None = None) -> None:
    """The upstream saw the provider's x-api-key and an anthropic-version (the SDK's own unless told),
    never the client's key."""
    got = fake.last
    assert got.headers.get("x-api-key") == ANTHROPIC_KEY
    assert got.headers.get("anthropic-version") == (version or SDK_VERSION)
    assert "Authorization" not in got.headers and "api-key" not in got.headers
    assert key not in str(dict(got.headers)) and key.encode() not in got.body


async def test_create(clients: Clients, key: str, claude: FakeAnthropic) -> None:
    message = await clients["anthropic"](key).messages.create(
        model="claude/claude-sonnet-4-5", max_tokens=64, messages=HELLO)
    assert message.content[0].text == "hello from the anthropic test"  # type: ignore[union-attr]
    assert message.usage.input_tokens == 10
    assert (claude.last.path, claude.last.json()["model"]) == ("/v1/messages", "claude-sonnet-4-5")
    assert_clean(claude, key)


async def test_stream_relays_the_event_sequence(clients: Clients, key: str, claude: FakeAnthropic) -> None:
    async with clients["anthropic"](key).messages.stream(
            model="sonnet", max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "message_delta" in kinds
    assert final.content[0].text == "hello from the anthropic test"  # type: ignore[union-attr]
    assert (final.usage.output_tokens, final.stop_reason) == (5, "end_turn")
    assert_clean(claude, key)


async def test_usage_is_metered_from_the_stream(clients: Clients, issue: Issue, proxy: TestClient,
                                                pool: asyncpg.Pool) -> None:
    issued = await issue()
    stream = await clients["anthropic"](issued.secret).messages.create(
        model="claude/claude-haiku-4-5", max_tokens=64, messages=HELLO, stream=True)
    async for _ in stream:
        pass
    await proxy.app[METER].flush()
    row = await pool.fetchrow("SELECT model, input_tokens, cached_input_tokens, output_tokens FROM usage_hourly"
                              " WHERE key_id = $1", issued.key.id)
    # message_start: 5 words + 5 uncached, 2 cache writes, 3 cache reads; message_delta: 5 output tokens
    assert dict(row) == {"model": "claude/claude-haiku-4-5", "input_tokens": 15, "cached_input_tokens": 3,
                         "output_tokens": 5}


async def test_key_as_bearer_token(clients: Clients, key: str, claude: FakeAnthropic) -> None:
    client = clients["anthropic"](None, auth_token=key)
    await client.messages.create(model="sonnet", max_tokens=8, messages=HELLO)
    assert_clean(claude, key)


async def test_disallowed_model_is_an_anthropic_permission_error(clients: Clients, issue: Issue,
                                                                 claude: FakeAnthropic) -> None:
    narrow = (await issue(allowed_models=["claude/claude-haiku-4-5"])).secret
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        await clients["anthropic"](narrow).messages.create(model="sonnet", max_tokens=8, messages=HELLO)
    assert info.value.body == {"type": "error", "error": {"type": "permission_error", "message":
                                                          "This API key is not allowed to use this model."}}
    assert claude.received == []


@pytest.mark.parametrize(("model", "key_kind", "error"), [
    ("claude/claude-sonnet-4-5", "wrong", anthropic.AuthenticationError),
    ("claude/nope", "good", anthropic.NotFoundError),
    ("oai/gpt-5", "good", anthropic.NotFoundError),  # an OpenAI-style model is not served on /v1/messages
])
async def test_errors_we_create_are_anthropic_shaped(clients: Clients, key: str, claude: FakeAnthropic,
                                                     model: str, key_kind: str, error: type[Exception]) -> None:
    presented = key if key_kind == "good" else key[:-4] + "AAAA"
    with pytest.raises(error) as info:
        await clients["anthropic"](presented).messages.create(model=model, max_tokens=8, messages=HELLO)
    body: Any = info.value.body  # type: ignore[attr-defined]
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert claude.received == []


async def test_betas_pass_by_allow_list_and_version_by_shape(clients: Clients, key: str,
                                                             claude: FakeAnthropic) -> None:
    client = clients["anthropic"](key, default_headers={
        "anthropic-beta": "prompt-caching-2024-07-31,files-api-2025-04-14", "anthropic-version": "2024-01-01"})
    await client.messages.create(model="sonnet", max_tokens=8, messages=HELLO)
    assert claude.last.headers.getall("anthropic-beta") == ["prompt-caching-2024-07-31"]
    assert_clean(claude, key, version="2024-01-01")


async def test_count_tokens(clients: Clients, key: str, claude: FakeAnthropic) -> None:
    counted = await clients["anthropic"](key).messages.count_tokens(model="sonnet", messages=HELLO)
    assert counted.input_tokens == 15
    assert claude.last.path == "/v1/messages/count_tokens"
    assert_clean(claude, key)


async def test_version_from_the_config_when_the_client_sends_none(proxy: TestClient, key: str,
                                                                  claude: FakeAnthropic) -> None:
    body = {"model": "sonnet", "max_tokens": 8, "messages": HELLO}
    r = await proxy.post("/v1/messages", json=body, headers={"x-api-key": key, "anthropic-version": "latest"})
    assert r.status == 200
    assert_clean(claude, key, version="2023-06-01")


async def test_a_provider_failing_mid_stream_raises_in_the_sdk(clients: Clients, key: str,
                                                               claude: FakeAnthropic) -> None:
    claude.break_after_start = True
    stream = await clients["anthropic"](key).messages.create(model="sonnet", max_tokens=8, messages=HELLO,
                                                             stream=True)
    with pytest.raises(anthropic.APIError) as info:
        async for _ in stream:
            pass
    body: Any = getattr(info.value, "body", None)  # our `event: error`, in Anthropic's shape
    assert isinstance(info.value, anthropic.APIStatusError), repr(info.value)
    assert body["type"] == "error" and body["error"]["type"] == "api_error"


async def test_a_provider_rejecting_our_credential_is_an_anthropic_shaped_502(clients: Clients, key: str,
                                                                              claude: FakeAnthropic) -> None:
    claude.credential = "rotated-at-the-provider"  # the gateway's configured key no longer works there
    with pytest.raises(anthropic.InternalServerError) as info:
        await clients["anthropic"](key).messages.create(model="sonnet", max_tokens=8, messages=HELLO)
    assert info.value.status_code == 502
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
