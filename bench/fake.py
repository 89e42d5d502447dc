"""The benchmark's fake OpenAI-compatible provider: a raw asyncio protocol on uvloop, no HTTP framework.

It answers every POST with one canned chat completion, or (when the body asks for `"stream": true`)
with a canned SSE stream of `chunks` events spaced `chunk_delay_ms` apart, and every GET with a model
list. A request body may ask for its own shape: `"bench_delay_ms": D` (the gap between two events, or
for a non-streamed answer the time the provider "thinks" before answering) and `"bench_chunks": N`
(events in a stream). It parses just enough HTTP/1.1 (request line, headers, Content-Length body,
keep-alive) to be correct for the clients used here (wrk, aiohttp, the streaming client), so it serves
many times what an aiohttp app can and is never the bottleneck.

Run: `python -m bench.fake --port 0 [--chunks 16] [--chunk-delay-ms 2]`; it prints `PORT <n>`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import sys
from dataclasses import dataclass
from typing import cast

import orjson
import uvloop

MODEL = "bench-model"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
# A request may set its own gap between SSE events: {"bench_delay_ms": 2}. The proxy forwards unknown
# fields, so one fake serves both the fast and the paced streaming scenarios.
_DELAY = re.compile(rb'"bench_delay_ms"\s*:\s*(\d+(?:\.\d+)?)')
_CHUNKS = re.compile(rb'"bench_chunks"\s*:\s*(\d+)')
_MAX_CHUNKS = 500  # a zero-gap stream is written by recursion: keep it shallow
_MAX_HEAD = 64 * 1024


def _completion() -> bytes:
    message = {"role": "assistant", "content": "Hello from the bench provider.", "refusal": None}
    return orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    })


def _response(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


@functools.lru_cache(maxsize=1024)
def _sse_chunk(n: int) -> bytes:
    """One SSE event as one HTTP chunk (chunked transfer encoding)."""
    delta = {"role": "assistant", "content": ""} if n == 0 else {"content": f"tok{n} "}
    event = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
    return _http_chunk(b"data: " + orjson.dumps(event) + b"\n\n")


def _http_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


COMPLETION = _response(_completion())
MODELS = _response(orjson.dumps({"object": "list", "data": [
    {"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}))
STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n")
STREAM_END = _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True, slots=True)
class StreamShape:
    chunks: int = 16
    delay_s: float = 0.0


class FakeProtocol(asyncio.Protocol):
    """One client connection: requests are answered in order; a stream holds later requests back."""

    def __init__(self, shape: StreamShape) -> None:
        self._shape = shape
        self._buf = bytearray()
        self._busy = False  # a stream or a delayed answer is being written: later requests wait
        self._delay_s = shape.delay_s
        self._chunks = shape.chunks
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._drain()

    def _drain(self) -> None:
        """Answer every complete request in the buffer (unless a stream is being written)."""
        while not self._busy and self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    self._transport.write(BAD_REQUEST)
                    self._transport.close()
                return
            head = bytes(self._buf[:end + 2])
            match = _CONTENT_LENGTH.search(head)
            size = int(match.group(1)) if match else 0
            if len(self._buf) < end + 4 + size:
                return
            body = bytes(self._buf[end + 4:end + 4 + size])
            del self._buf[:end + 4 + size]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self._transport is not None
        if head.startswith(b"GET "):
            self._transport.write(MODELS)
            return
        delay = _DELAY.search(body)
        if _STREAM_TRUE.search(body):
            self._busy = True
            self._delay_s = float(delay.group(1)) / 1000 if delay else self._shape.delay_s
            chunks = _CHUNKS.search(body)
            self._chunks = min(int(chunks.group(1)), _MAX_CHUNKS) if chunks else self._shape.chunks
            self._transport.write(STREAM_HEAD)
            self._write_event(0)
        elif delay is not None and float(delay.group(1)) > 0:
            self._busy = True  # answered later; the next request on this connection waits for it
            asyncio.get_running_loop().call_later(float(delay.group(1)) / 1000, self._write_late)
        else:
            self._transport.write(COMPLETION)

    def _write_late(self) -> None:
        self._busy = False
        if self._transport is not None:
            self._transport.write(COMPLETION)
            self._drain()

    def _write_event(self, n: int) -> None:
        if self._transport is None:
            return
        if n >= self._chunks:
            self._transport.write(STREAM_END)
            self._busy = False
            self._drain()
            return
        self._transport.write(_sse_chunk(n))
        if self._delay_s > 0:
            asyncio.get_running_loop().call_later(self._delay_s, self._write_event, n + 1)
        else:
            self._write_event(n + 1)


async def serve(host: str, port: int, shape: StreamShape) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: FakeProtocol(shape), host, port, backlog=4096, reuse_address=True)


async def _main(args: argparse.Namespace) -> None:
    server = await serve(args.host, args.port, StreamShape(args.chunks, args.chunk_delay_ms / 1000))
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=16, help="SSE events per streamed answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="gap between two SSE events")
    args = parser.parse_args(argv)
    try:
        uvloop.run(_main(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
