"""SIGTERM on `tokenhub serve`: new connections are refused at once, a stream in flight runs to its end,
then the process exits; a stream that outlasts `shutdown_grace_seconds` is cut and the process exits."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.ops import Demo, admin_call, refused, wait_until
from tests.support.procs import ServeProcess, serving

pytestmark = pytest.mark.slow
WORDS = "one two three four five"


def stream_request(proc: ServeProcess, session: aiohttp.ClientSession, key: str) -> Any:
    body = {"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": WORDS}]}
    return session.post(proc.url("/v1/chat/completions"), json=body, headers={"Authorization": f"Bearer {key}"})


def streamed_text(raw: bytes) -> str:
    events = [e[len("data: "):] for e in raw.decode().split("\n\n") if e.startswith("data: {")]
    return "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events
                   if json.loads(e)["choices"])


async def test_sigterm_lets_the_stream_finish(make_config: Callable[..., Path], demo: Demo) -> None:
    demo.hold_after = 1  # the provider stops after the second chunk until released
    async with serving(make_config(server={"shutdown_grace_seconds": 60.0})) as proc:
        key = (await admin_call(proc, "POST", "/admin/keys", {"name": "drain"}))["key"]
        async with aiohttp.ClientSession() as session, stream_request(proc, session, key) as r:
            assert r.status == 200
            await asyncio.wait_for(demo.streaming.wait(), 20)
            proc.proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: refused(proc.port))  # no new connections while draining
            assert "draining" in proc.log() and proc.proc.poll() is None  # still serving the stream
            demo.release.set()
            raw = await r.read()
        assert raw.endswith(b"data: [DONE]\n\n") and streamed_text(raw) == WORDS
        await wait_until(lambda: proc.proc.poll() is not None)
        assert proc.proc.returncode == 0


async def test_stream_longer_than_the_grace_is_cut(make_config: Callable[..., Path], demo: Demo) -> None:
    demo.hold_after = 1  # never released: the stream would last forever
    async with serving(make_config(server={"shutdown_grace_seconds": 1.0})) as proc:
        key = (await admin_call(proc, "POST", "/admin/keys", {"name": "drain-cut"}))["key"]
        async with aiohttp.ClientSession() as session, stream_request(proc, session, key) as r:
            await asyncio.wait_for(demo.streaming.wait(), 20)
            proc.proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: proc.proc.poll() is not None, timeout=30)
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()  # cut mid-stream, never reached [DONE]
        assert proc.proc.returncode == 0
