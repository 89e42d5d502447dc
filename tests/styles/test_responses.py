"""The OpenAI Responses API through the proxy with the real `openai` SDK: created plain and streamed,
metered, and stored responses reachable only by the key that created them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import openai
import pytest
from aiohttp.test_utils import TestClient

from keystore import Actor, KeyStore

from proxy.state import KEYSTORE, METER
from tests.support.styles import OPENAI_KEY, FakeResponses, Issue

Clients = dict[str, Callable[..., Any]]


def assert_clean(fake: FakeResponses, key: str) -> None:
    got = fake.last
    assert got.headers.get("Authorization") == f"Bearer {OPENAI_KEY}"
    assert "x-api-key" not in got.headers and "api-key" not in got.headers
    assert key not in str(dict(got.headers)) and key.encode() not in got.body


async def test_create(clients: Clients, key: str, oai: FakeResponses) -> None:
    response = await clients["openai"](key).responses.create(model="oai/gpt-5", input="say it back")
    assert response.output_text == "say it back" and response.id in oai.stored
    assert (oai.last.path, oai.last.json()["model"]) == ("/v1/responses", "gpt-5")
    assert_clean(oai, key)


async def test_create_streamed_and_metered(clients: Clients, issue: Issue, oai: FakeResponses, proxy: TestClient,
                                           pool: asyncpg.Pool) -> None:
    issued = await issue()
    stream = await clients["openai"](issued.secret).responses.create(
        model="oai/gpt-5-mini", input="three words here", stream=True)
    events = [event async for event in stream]
    assert (events[0].type, events[-1].type) == ("response.created", "response.completed")
    assert events[-1].response.output_text == "three words here"  # type: ignore[union-attr]
    await proxy.app[METER].flush()
    row = await pool.fetchrow("SELECT input_tokens, cached_input_tokens, output_tokens FROM usage_hourly"
                              " WHERE key_id = $1", issued.key.id)
    assert dict(row) == {"input_tokens": 10, "cached_input_tokens": 2, "output_tokens": 3}
    assert_clean(oai, issued.secret)


@pytest.mark.parametrize("streamed", [False, True])
async def test_retrieve_only_by_the_creating_key(clients: Clients, issue: Issue, oai: FakeResponses,
                                                 streamed: bool) -> None:
    mine, other = (await issue()).secret, (await issue(name="other")).secret
    created = await clients["openai"](mine).responses.create(model="oai/gpt-5", input="mine", stream=streamed)
    if streamed:
        events = [e async for e in created]  # the whole stream: the id is recorded on the way
        response_id = events[0].response.id
    else:
        response_id = created.id
    assert (await clients["openai"](mine).responses.retrieve(response_id)).output_text == "mine"
    assert oai.last.path == f"/v1/responses/{response_id}"
    seen = len(oai.received)
    with pytest.raises(openai.NotFoundError):
        await clients["openai"](other).responses.retrieve(response_id)
    assert len(oai.received) == seen  # the other key's request never reached the provider


async def test_delete_cancel_and_input_items_only_by_the_creating_key(clients: Clients, issue: Issue,
                                                                      oai: FakeResponses) -> None:
    mine, other = clients["openai"]((await issue()).secret), clients["openai"]((await issue(name="o")).secret)
    created = await mine.responses.create(model="oai/gpt-5", input="x", background=True)
    for call in (other.responses.cancel, other.responses.delete, other.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            await call(created.id)
    assert [r.method for r in oai.received] == ["POST"]
    assert (await mine.responses.cancel(created.id)).status == "cancelled"
    await mine.responses.input_items.list(created.id, limit=5)
    assert (oai.last.path, oai.last.query) == (f"/v1/responses/{created.id}/input_items", "limit=5")
    await mine.responses.delete(created.id)
    assert created.id not in oai.stored


async def test_previous_response_id_of_another_key_is_refused(clients: Clients, issue: Issue,
                                                              oai: FakeResponses) -> None:
    mine, other = clients["openai"]((await issue()).secret), clients["openai"]((await issue(name="o")).secret)
    first = await mine.responses.create(model="oai/gpt-5", input="first")
    with pytest.raises(openai.NotFoundError) as info:
        await other.responses.create(model="oai/gpt-5", input="next", previous_response_id=first.id)
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert len(oai.received) == 1
    follow = await mine.responses.create(model="oai/gpt-5", input="next", previous_response_id=first.id)
    assert follow.previous_response_id == first.id


async def test_the_rotated_key_keeps_its_responses(clients: Clients, issue: Issue, proxy: TestClient) -> None:
    issued = await issue()
    created = await clients["openai"](issued.secret).responses.create(model="oai/gpt-5", input="kept")
    store: KeyStore = proxy.app[KEYSTORE]
    rotated, _, _ = await store.rotate(Actor("test"), issued.key.id)
    assert (await clients["openai"](rotated.secret).responses.retrieve(created.id)).id == created.id


async def test_an_unknown_or_odd_id_is_404_without_upstream_contact(proxy: TestClient, key: str,
                                                                    oai: FakeResponses) -> None:
    for rid in ("resp_000000000000000000000099", "resp.bad", "a" * 300):
        r = await proxy.get(f"/v1/responses/{rid}", headers={"Authorization": f"Bearer {key}"})
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    assert oai.received == []


async def test_a_streamed_response_is_its_creators_from_its_first_event(clients: Clients, issue: Issue,
                                                                        oai: FakeResponses) -> None:
    mine, other = clients["openai"]((await issue()).secret), clients["openai"]((await issue(name="o")).secret)
    oai.hold = asyncio.Event()  # the provider sends response.created, then waits: the stream is still open
    stream = await mine.responses.create(model="oai/gpt-5", input="long", stream=True, background=True)
    events = aiter(stream)
    first = await asyncio.wait_for(anext(events), 10)
    assert first.type == "response.created"
    assert (await mine.responses.cancel(first.response.id)).status == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(openai.NotFoundError):
        await other.responses.cancel(first.response.id)  # type: ignore[union-attr]
    oai.hold.set()
    assert [e.type async for e in events][-1] == "response.completed"
