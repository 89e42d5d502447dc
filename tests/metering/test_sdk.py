"""The real OpenAI SDK through the proxy to a recording upstream: the client sees the upstream's bytes
(minus only the usage chunk the gateway asked for), and the usage endpoint shows the provider's figures
and the cost from the configured prices."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.state import METRICS
from tests.metering.streams import EMBED_USAGE, USAGE
from tests.support.metering import CHAT, EMBED, INSTRUCT, Recorder, Stack

MESSAGES: Any = [{"role": "user", "content": "Say hello"}]


def without_usage_chunk(raw: bytes) -> bytes:
    return b"".join(e + b"\n\n" for e in raw.split(b"\n\n") if e and b'"choices":[]' not in e)


async def streamed_bytes(metered_stack: Stack, key: str, **kw: Any) -> bytes:
    async with metered_stack.sdk(key) as sdk, sdk.chat.completions.with_streaming_response.create(
            model=f"openai/{CHAT}", messages=MESSAGES, stream=True, **kw) as response:
        return b"".join([chunk async for chunk in response.iter_bytes()])


def cost(prompt: int, completion: int, price_in: float, price_out: float) -> float:
    return round((prompt * price_in + completion * price_out) / 1_000_000, 9)


async def test_non_streamed_chat_is_metered_with_its_cost(metered_stack: Stack, recorder: Recorder) -> None:
    key, key_id = await metered_stack.issue()
    async with metered_stack.sdk(key) as sdk:
        answer = await sdk.chat.completions.create(model=f"openai/{CHAT}", messages=MESSAGES)
    assert answer.usage is not None and answer.usage.prompt_tokens == USAGE["prompt_tokens"]
    usage = await metered_stack.usage(key_id, group_by="model")
    assert usage["total"] == {"requests": 1, "unmetered_requests": 0, "input_tokens": 19, "cached_input_tokens": 6,
                              "output_tokens": 3, "usd": cost(19, 3, 0.15, 0.60)}
    assert [row["model"] for row in usage["data"]] == [f"openai/{CHAT}"]


async def test_stream_without_include_usage_client_sees_the_upstream_bytes_minus_the_injected_chunk(
        metered_stack: Stack, recorder: Recorder) -> None:
    key, key_id = await metered_stack.issue()
    raw = await streamed_bytes(metered_stack, key)
    assert recorder.received[-1]["stream_options"] == {"include_usage": True}  # the gateway asked
    upstream = recorder.sent[-1]
    assert b'"choices":[]' in upstream and raw == without_usage_chunk(upstream)
    assert (await metered_stack.usage(key_id))["total"]["input_tokens"] == USAGE["prompt_tokens"]


async def test_stream_with_include_usage_is_byte_identical(metered_stack: Stack, recorder: Recorder) -> None:
    key, key_id = await metered_stack.issue()
    raw = await streamed_bytes(metered_stack, key, stream_options={"include_usage": True})
    assert raw == recorder.sent[-1] and b'"choices":[]' in raw
    total = (await metered_stack.usage(key_id))["total"]
    assert (total["input_tokens"], total["output_tokens"], total["cached_input_tokens"]) == (19, 3, 6)


async def test_sdk_parses_both_streams(metered_stack: Stack) -> None:
    key, _ = await metered_stack.issue()
    async with metered_stack.sdk(key) as sdk:
        plain = [c async for c in await sdk.chat.completions.create(model=f"openai/{CHAT}", messages=MESSAGES,
                                                                     stream=True)]
        asked = [c async for c in await sdk.chat.completions.create(
            model=f"openai/{CHAT}", messages=MESSAGES, stream=True, stream_options={"include_usage": True})]
    assert all(c.choices for c in plain) and not any(c.usage for c in plain)
    assert asked[-1].usage is not None and asked[-1].usage.completion_tokens == USAGE["completion_tokens"]


@pytest.mark.parametrize("stream", [False, True])
async def test_completions(metered_stack: Stack, recorder: Recorder, stream: bool) -> None:
    key, key_id = await metered_stack.issue()
    async with metered_stack.sdk(key) as sdk:
        if stream:
            chunks = [c async for c in await sdk.completions.create(model=f"openai/{INSTRUCT}", prompt="Hi",
                                                                    stream=True)]
            assert all(c.choices for c in chunks)  # the injected usage chunk never reached the client
        else:
            await sdk.completions.create(model=f"openai/{INSTRUCT}", prompt="Hi")
    usage = await metered_stack.usage(key_id)
    assert usage["total"]["input_tokens"] == 19 and usage["total"]["usd"] == cost(19, 3, 1.50, 2.00)


async def test_embeddings(metered_stack: Stack) -> None:
    key, key_id = await metered_stack.issue()
    async with metered_stack.sdk(key) as sdk:
        await sdk.embeddings.create(model=f"openai/{EMBED}", input=["one", "two"])
    total = (await metered_stack.usage(key_id))["total"]
    assert (total["input_tokens"], total["output_tokens"]) == (EMBED_USAGE["prompt_tokens"], 0)
    assert total["usd"] == cost(8, 0, 0.02, 0.0)


async def test_prometheus_counts_tokens_by_provider_and_model_never_by_key(metered_stack: Stack) -> None:
    key, key_id = await metered_stack.issue()
    async with metered_stack.sdk(key) as sdk:
        await sdk.chat.completions.create(model=f"openai/{CHAT}", messages=MESSAGES)
    scrape = (await (await metered_stack.admin.get("/metrics")).read()).decode()
    labels = {"provider": "openai", "model": f"openai/{CHAT}"}
    registry = metered_stack.proxy.app[METRICS].registry
    assert registry.get_sample_value("tokenhub_usage_tokens_total", labels | {"kind": "input"}) == 19
    assert registry.get_sample_value("tokenhub_usage_tokens_total", labels | {"kind": "cached_input"}) == 6
    assert registry.get_sample_value("tokenhub_usage_tokens_total", labels | {"kind": "output"}) == 3
    assert registry.get_sample_value("tokenhub_usage_requests_total", labels) == 1
    assert "tokenhub_usage_tokens_total{" in scrape and key_id not in scrape
