"""Requests without a complete usage figure are counted as unmetered, with their reason (rollups and
metrics), never as a silent zero; what was known is still charged."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.gateway.styles.usage import ANTHROPIC_USAGE
from proxy.gateway.tap import Outcome
from proxy.metering.parsers import UsageState
from proxy.metering.tap import Metered, MeteringTap
from proxy.metering.usage import Price, Unmetered, Usage
from proxy.runtime.access import AccessSink
from proxy.state import METRICS, REQUEST_LOG
from tests.support import eventually
from tests.support.metering import CHAT, PROVIDER_REQUEST_ID, Recorder, Stack

CHAT_BODY: Any = {"model": f"openai/{CHAT}", "messages": [{"role": "user", "content": "hi"}]}


def unmetered(metered_stack: Stack, reason: str) -> float:
    value = metered_stack.proxy.app[METRICS].registry.get_sample_value(
        "tokenhub_usage_unmetered_total", {"provider": "openai", "reason": reason})
    return value or 0.0


async def post(metered_stack: Stack, key: str, body: dict[str, Any]) -> bytes:
    async with aiohttp.ClientSession() as session, session.post(
            metered_stack.proxy.make_url("/v1/chat/completions"), json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        return await r.read()


@pytest.mark.parametrize("stream", [False, True])
async def test_no_usage_reported(metered_stack: Stack, recorder: Recorder, stream: bool) -> None:
    recorder.mode = "no_usage"
    key, key_id = await metered_stack.issue()
    await post(metered_stack, key, CHAT_BODY | {"stream": stream})
    total = (await metered_stack.usage(key_id))["total"]
    assert (total["requests"], total["unmetered_requests"], total["input_tokens"]) == (1, 1, 0)
    assert unmetered(metered_stack, "no_usage_reported") == 1


async def test_client_gone_mid_stream(metered_stack: Stack, recorder: Recorder) -> None:
    recorder.mode = "hold"
    key, key_id = await metered_stack.issue()
    async with aiohttp.ClientSession() as session, session.post(
            metered_stack.proxy.make_url("/v1/chat/completions"), json=CHAT_BODY | {"stream": True},
            headers={"Authorization": f"Bearer {key}"}) as r:
        assert (await r.content.readany()).startswith(b"data: ")
        await recorder.holding.wait()
    # leaving the block closed the connection mid-stream
    await eventually(lambda: unmetered(metered_stack, "client_gone") == 1)
    total = (await metered_stack.usage(key_id))["total"]
    assert (total["requests"], total["unmetered_requests"]) == (1, 1)


async def test_upstream_broke_mid_stream(metered_stack: Stack, recorder: Recorder) -> None:
    recorder.mode = "break"
    key, key_id = await metered_stack.issue()
    with pytest.raises(aiohttp.ClientPayloadError):  # the relay ends a broken stream visibly
        await post(metered_stack, key, CHAT_BODY | {"stream": True})
    await eventually(lambda: unmetered(metered_stack, "upstream_failed") == 1)
    assert (await metered_stack.usage(key_id))["total"]["unmetered_requests"] == 1


class StartsWithInput:
    """A format like Anthropic's: input tokens announced by the first event, the rest at the end."""

    def from_event(self, event: Any, state: UsageState) -> bool:
        state.partial = Usage(input_tokens=event["usage"]["input_tokens"])
        return False

    def from_usage(self, usage: Any, state: UsageState) -> None:
        raise AssertionError("not a whole answer")


def test_client_gone_is_charged_the_input_tokens_already_reported() -> None:
    recorded: list[Metered] = []
    tap = MeteringTap(StartsWithInput(), strip=False, price=None, record=recorded.append)
    tap.on_start(200, CIMultiDictProxy(CIMultiDict({"Content-Type": "text/event-stream"})))
    tap.on_chunk(b'data: {"type":"message_start","usage":{"input_tokens":42}}\n\n')
    tap.on_end(Outcome.CLIENT_GONE)
    assert recorded == [Metered(Usage(input_tokens=42), Unmetered.CLIENT_GONE, None, None)]
    assert tap.result is recorded[0]


def test_refused_before_the_provider_is_not_counted() -> None:
    recorded: list[Metered] = []
    tap = MeteringTap(StartsWithInput(), strip=False, price=None, record=recorded.append)
    tap.on_end(Outcome.NOT_SENT)
    assert recorded == [] and tap.result is None


def test_client_gone_from_an_anthropic_stream_is_charged_its_announced_input() -> None:
    recorded: list[Metered] = []
    tap = MeteringTap(ANTHROPIC_USAGE, strip=False, price=Price(Decimal(3), Decimal(15)), record=recorded.append)
    tap.on_start(200, CIMultiDictProxy(CIMultiDict({"Content-Type": "text/event-stream", "request-id": "req_1"})))
    start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
             b'"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}\n\n')
    assert tap.on_chunk(start) is start
    tap.on_end(Outcome.CLIENT_GONE)
    assert recorded == [Metered(Usage(input_tokens=30, output_tokens=1, cached_input_tokens=5), Unmetered.CLIENT_GONE,
                                Decimal("0.000105"), "req_1")]


async def test_access_line_says_why_a_request_is_unmetered(metered_stack: Stack, recorder: Recorder) -> None:
    lines = io.StringIO()
    metered_stack.proxy.app[REQUEST_LOG].sink = sink = AccessSink(lines, json=True, enabled=True)
    recorder.mode = "no_usage"
    key, _ = await metered_stack.issue()
    await post(metered_stack, key, CHAT_BODY)
    recorder.mode = "normal"
    await post(metered_stack, key, CHAT_BODY)
    sink.flush()
    logged = [orjson.loads(line) for line in lines.getvalue().splitlines()]
    assert [(e["unmetered"], e["input_tokens"], e["upstream_request_id"]) for e in logged] == [
        ("no_usage_reported", 0, PROVIDER_REQUEST_ID), (None, 19, PROVIDER_REQUEST_ID)]
