"""Reading and validating a request body: a byte limit that also holds for chunked bodies, no
compressed bodies, a deadline for the whole body, JSON parsed exactly once.

aiohttp enforces `client_max_size` only inside `request.read()`, and it silently decompresses bodies
sent with `Content-Encoding` while the headers still describe the compressed bytes. So we count the
bytes ourselves and refuse any `Content-Encoding` but `identity` (415): LLM request bodies are small
JSON, and a decompression bomb is not worth supporting. Only one `Content-Encoding: identity` counts
as none: a second header (`identity`, then `gzip`) is refused too.

The parsed object is what the caller validates and re-serialises for the provider: with
`{"model": "a", "model": "b"}` orjson keeps `b`, and the provider then receives only `b`, so a
duplicate key cannot smuggle a model past the check.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

# Deeper JSON is refused (400): orjson cannot re-serialise past 255 levels, and no API needs 64.
MAX_DEPTH = 64


def _check_headers(request: web.Request, limit: int) -> None:
    encodings = request.headers.getall("Content-Encoding", ())
    # Only a single `identity` is no encoding: two headers (identity, then gzip) or a list are refused.
    if encodings and (len(encodings) > 1 or encodings[0].strip().lower() != "identity"):
        # Close instead of draining: aiohttp would decode the unread body to skip it, and a body that
        # does not decode as its header claims logged an ERROR traceback for a client's mistake.
        raise UnsupportedMediaType("Compressed request bodies (Content-Encoding) are not accepted; "
                                   "send the JSON uncompressed.", param="Content-Encoding",
                                   headers={"Connection": "close"})
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")


async def _read_limited(request: web.Request, limit: int) -> bytes:
    stream = request.content
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, at most `limit` bytes, within `timeout` seconds; raises 413/415/408."""
    _check_headers(request, limit)
    if request.content.is_eof():  # the whole body has already arrived (the usual small JSON): no deadline
        return await _read_limited(request, limit)
    try:
        async with asyncio.timeout(timeout):
            return await _read_limited(request, limit)
    except TimeoutError:
        # The rest of the body may still be on its way: close rather than read it for the next request.
        raise RequestTimeout(f"The request body did not arrive within {timeout:g} seconds.",
                             headers={"Connection": "close"}) from None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, nested at most `MAX_DEPTH` levels; InvalidRequest otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    # Few brackets cannot nest deep: the exact walk runs only for bodies with many containers.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
        raise InvalidRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.")
    return body


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object carrying a string `model`; InvalidRequest otherwise."""
    body = parse_object(raw)
    model = body.get("model")
    if model is None:
        raise InvalidRequest("You must provide a model parameter.", param="model")
    if not isinstance(model, str):
        raise InvalidRequest("The model parameter must be a string.", param="model")
    return body
