"""A streaming load client: N keep-alive connections, each sending SSE chat requests back to back,
timing the first body chunk (time to first byte) and the terminating chunk (total) of every answer.

Raw HTTP/1.1 over asyncio streams on uvloop, so the client adds little of its own. Run as
`python -m bench.streamclient --url ... --streams 16 --seconds 5 [--key K] --body JSON`; prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import uvloop

from .stats import percentile


class StreamError(Exception):
    """The server did not answer with a 200 chunked stream."""


@dataclass
class Samples:
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    errors: int = 0


def build_request(url: str, body: bytes, key: str | None) -> bytes:
    parts = urlsplit(url)
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Accept: text/event-stream"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    status = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if not status.startswith(b"HTTP/1.1 200"):
        await reader.readexactly(int(headers.get("content-length", "0")))
        raise StreamError(status.decode("latin-1").strip())
    if headers.get("transfer-encoding", "").lower() != "chunked":
        raise StreamError("answer is not chunked")
    return headers


async def one_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     request: bytes) -> tuple[float, float, int]:
    """Send one request; return (seconds to the first body chunk, seconds to the end, chunks)."""
    started = time.perf_counter()
    writer.write(request)
    await _read_head(reader)
    first = 0.0
    chunks = 0
    while True:
        size = int((await reader.readline()).split(b";")[0].strip(), 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return first, time.perf_counter() - started, chunks
        if chunks == 0:
            first = time.perf_counter() - started
        chunks += 1


async def _worker(url: str, request: bytes, deadline: float, samples: Samples) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        await one_stream(reader, writer, request)  # warm-up: connection setup is not what we measure
        while time.perf_counter() < deadline:
            try:
                ttfb, total, chunks = await one_stream(reader, writer, request)
            except StreamError:
                samples.errors += 1
                continue
            samples.ttfb.append(ttfb)
            samples.total.append(total)
            samples.events.append(chunks)
    finally:
        writer.close()


async def run(url: str, body: bytes, key: str | None, streams: int, seconds: float) -> Samples:
    samples = Samples()
    request = build_request(url, body, key)
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_worker(url, request, deadline, samples) for _ in range(streams)))
    return samples


def summarize(samples: Samples, seconds: float) -> dict[str, float]:
    ms = [t * 1000 for t in samples.ttfb]
    total = [t * 1000 for t in samples.total]
    return {
        "streams_done": len(ms), "errors": samples.errors, "streams_per_s": len(ms) / seconds,
        "ttfb_p50_ms": percentile(ms, 50), "ttfb_p99_ms": percentile(ms, 99),
        "total_p50_ms": percentile(total, 50), "total_p99_ms": percentile(total, 99),
        "chunks_min": min(samples.events, default=0), "chunks_p50": percentile(samples.events, 50),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.streamclient", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="the JSON request body (with \"stream\": true)")
    parser.add_argument("--key", default=None)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    samples = uvloop.run(run(args.url, args.body.encode(), args.key, args.streams, args.seconds))
    print("STREAMJSON " + json.dumps(summarize(samples, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
