"""One access line and one `tokenhub_requests_total` sample per request, with its true status, the
provider's own request id and the outcome of a stream that did not simply complete (access.py)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from proxy.runtime.access import AccessSink
from proxy.state import METRICS, REQUEST_LOG
from tests.support.fakes import FakeProvider, canned
from tests.support.upstreams import drops_after

CHAT = "/v1/chat/completions"
BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}


def attach(proxy: TestClient) -> tuple[AccessSink, io.StringIO]:
    out = io.StringIO()
    sink = AccessSink(out, json=True, enabled=True, flush_seconds=0.01)
    proxy.app[REQUEST_LOG].sink = sink
    return sink, out


def lines(sink: AccessSink, out: io.StringIO) -> list[dict[str, Any]]:
    sink.flush()
    return [orjson.loads(x) for x in out.getvalue().splitlines()]


def counted(proxy: TestClient, status: int) -> float:
    text = proxy.app[METRICS].render().decode()
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines()
               if x.startswith("tokenhub_requests_total{") and f'status="{status}"' in x and 'route="/v1/' in x)


async def test_the_providers_request_id_is_in_the_access_line(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    sink, out = attach(proxy)
    fake.override = canned(200, b"{}", {"Content-Type": "application/json", "x-request-id": "req_up_42"})
    r = await proxy.post(CHAT, json=BODY, headers={"Authorization": f"Bearer {key}", "X-Request-ID": "ours-42"})
    assert r.status == 200
    [line] = [x for x in lines(sink, out) if x["request_id"] == "ours-42"]
    assert (line["status"], line["upstream_request_id"]) == (200, "req_up_42")
    assert counted(proxy, 200) == 1


async def test_a_stream_failed_mid_way_is_one_502_line(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    sink, out = attach(proxy)
    fake.override = drops_after(2)
    r = await proxy.post(CHAT, json=BODY | {"stream": True}, headers={"Authorization": f"Bearer {key}",
                                                                      "X-Request-ID": "broken-1"})
    assert r.status == 200  # the head was already sent
    with pytest.raises(aiohttp.ClientPayloadError):  # read to the (broken) end: the client stays
        await asyncio.wait_for(r.content.read(), 10)
    for _ in range(200):
        found = [x for x in lines(sink, out) if x["request_id"] == "broken-1"]
        if found:
            break
        await asyncio.sleep(0.02)
    assert len(found) == 1 and found[0]["status"] == 502 and found[0]["message"].endswith("upstream_failed")
    assert counted(proxy, 502) == 1 and counted(proxy, 200) == 0


async def test_a_client_gone_mid_stream_is_one_499_line(proxy: TestClient, key: str, fake: FakeProvider) -> None:
    sink, out = attach(proxy)
    fake.hold_streams()
    r = await proxy.post(CHAT, json=BODY | {"stream": True}, headers={"Authorization": f"Bearer {key}",
                                                                      "X-Request-ID": "gone-1"})
    await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
    r.close()  # the client leaves mid-stream: aiohttp itself logs nothing for a cancelled handler
    await asyncio.wait_for(fake.cancelled.wait(), 10)
    for _ in range(200):
        found = [x for x in lines(sink, out) if x["request_id"] == "gone-1"]
        if found:
            break
        await asyncio.sleep(0.02)
    assert len(found) == 1 and found[0]["status"] == 499 and found[0]["message"].endswith("client_gone")
    assert counted(proxy, 499) == 1
