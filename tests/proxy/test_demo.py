"""The built-in demo provider, driven by the OpenAI SDK directly (no proxy in between)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI, NotFoundError

from proxy.runtime.demo import create_demo_app, embedding_of

USER = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "echo me back"}]


@pytest.fixture
async def demo(aiohttp_server: Any) -> AsyncIterator[AsyncOpenAI]:
    server = await aiohttp_server(create_demo_app())
    client = AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="unused", max_retries=0)
    yield client
    await client.close()


async def test_chat_echoes_the_last_user_message(demo: AsyncOpenAI) -> None:
    answer = await demo.chat.completions.create(model="echo", messages=USER)
    assert answer.choices[0].message.content == "echo me back"
    assert answer.usage is not None and answer.usage.completion_tokens == 3


async def test_streamed_chat_with_usage(demo: AsyncOpenAI) -> None:
    stream = await demo.chat.completions.create(model="echo", messages=USER, stream=True,
                                                stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo me back"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6


async def test_completions_streamed(demo: AsyncOpenAI) -> None:
    stream = await demo.completions.create(model="echo", prompt="one two", stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == "one two"


async def test_embeddings_are_deterministic(demo: AsyncOpenAI) -> None:
    result = await demo.embeddings.create(model="embed-small", input=["a", "b"], dimensions=16)
    assert result.data[0].embedding == embedding_of("a", 16)
    assert result.data[0].embedding != result.data[1].embedding


async def test_models_and_unknown_model(demo: AsyncOpenAI) -> None:
    assert [m.id async for m in demo.models.list()] == ["echo", "echo-mini", "embed-small"]
    with pytest.raises(NotFoundError):
        await demo.chat.completions.create(model="gpt-nope", messages=USER)
