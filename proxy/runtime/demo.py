"""A built-in demo OpenAI-compatible provider: echoes chat and completions, makes toy embeddings.

It serves `tokenhub local` (a newcomer gets answers without any real provider) and doubles as the
benchmark's fake upstream, so it is fast: no sleeps unless asked for, orjson, no per-chunk flush waits
beyond aiohttp's own write.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import orjson
from aiohttp import web

DEMO_MODELS: tuple[str, ...] = ("echo", "echo-mini", "embed-small")
EMBED_DIMENSIONS = 8
ChunkHook = Callable[[int], Awaitable[None]]  # awaited after chunk n (0-based) of a stream is written

_MODELS: web.AppKey[tuple[str, ...]] = web.AppKey("demo_models")
_CHUNK_HOOK: web.AppKey[ChunkHook | None] = web.AppKey("demo_chunk_hook")
_IDS: web.AppKey[Iterator[int]] = web.AppKey("demo_ids")
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_DONE = b"data: [DONE]\n\n"


def create_demo_app(*, models: Iterable[str] = DEMO_MODELS, chunk_delay: float = 0.0,
                    on_chunk: ChunkHook | None = None) -> web.Application:
    """The demo provider. `chunk_delay` (seconds) spaces stream chunks out; `on_chunk` lets a test
    hold a stream after a given chunk (it is awaited after each chunk is written)."""
    app = web.Application()
    app[_MODELS] = tuple(models)
    app[_IDS] = itertools.count(1)
    if on_chunk is None and chunk_delay > 0:
        on_chunk = _sleeper(chunk_delay)
    app[_CHUNK_HOOK] = on_chunk
    app.add_routes([
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/completions", completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", list_models),
    ])
    return app


def _sleeper(delay: float) -> ChunkHook:
    async def pause(_: int) -> None:
        await asyncio.sleep(delay)
    return pause


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def _payload(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "The request body is not valid JSON.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(400, "you must provide a model parameter", "model")
    if body["model"] not in request.app[_MODELS]:
        return _error(404, f"The model '{body['model']}' does not exist", "model")
    return body


def _text_of(content: Any) -> str:
    """A message's content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _next_id(request: web.Request) -> int:
    ids = request.app[_IDS]
    return next(ids)


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
    return ""


def _usage(prompt: str, reply: str) -> dict[str, int]:
    p, c = len(prompt.split()), len(reply.split())
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _pieces(text: str) -> list[str]:
    """Stream pieces: words with their following space, so joining them gives the text back."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]] if text else []


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _payload(request)
    if isinstance(body, web.Response):
        return body
    prompt = _last_user_text(body.get("messages"))
    reply = prompt or "Hello from the TokenHub demo provider."
    ident = f"chatcmpl-demo{_next_id(request)}"
    if body.get("stream") is True:
        return await _stream_chat(request, body, ident, prompt, reply)
    message = {"role": "assistant", "content": reply, "refusal": None}
    return web.Response(body=orjson.dumps({
        "id": ident, "object": "chat.completion", "created": int(time.time()), "model": body["model"],
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(prompt, reply), "system_fingerprint": "tokenhub-demo",
    }), content_type="application/json")


async def _stream_chat(request: web.Request, body: dict[str, Any], ident: str, prompt: str,
                       reply: str) -> web.StreamResponse:
    head = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": body["model"], "system_fingerprint": "tokenhub-demo"}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in _pieces(reply)]
    events = [head | {"choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
              for d in deltas]
    events.append(head | {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append(head | {"choices": [], "usage": _usage(prompt, reply)})
    return await _send_sse(request, events)


async def completions(request: web.Request) -> web.StreamResponse:
    body = await _payload(request)
    if isinstance(body, web.Response):
        return body
    prompt = body.get("prompt")
    text = prompt if isinstance(prompt, str) else " ".join(p for p in prompt or [] if isinstance(p, str))
    ident = f"cmpl-demo{_next_id(request)}"
    head = {"id": ident, "object": "text_completion", "created": int(time.time()), "model": body["model"]}
    if body.get("stream") is True:
        events = [head | {"choices": [{"index": 0, "text": p, "logprobs": None, "finish_reason": None}]}
                  for p in _pieces(text)]
        events.append(head | {"choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]})
        return await _send_sse(request, events)
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
    return web.Response(body=orjson.dumps(head | {"choices": [choice], "usage": _usage(text, text)}),
                        content_type="application/json")


async def _send_sse(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    response = web.StreamResponse(headers=_SSE_HEADERS)
    await response.prepare(request)
    hook = request.app[_CHUNK_HOOK]
    for n, event in enumerate(events):
        await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        if hook is not None:
            await hook(n)
    await response.write(_DONE)
    await response.write_eof()
    return response


def embedding_of(text: str, dimensions: int = EMBED_DIMENSIONS) -> list[float]:
    """A deterministic unit-ish vector derived from the text's SHA-256 (repeated as needed)."""
    digest = b""
    counter = 0
    while len(digest) < 2 * dimensions:
        digest += hashlib.sha256(counter.to_bytes(4, "big") + text.encode()).digest()
        counter += 1
    raw = struct.unpack(f">{dimensions}H", digest[:2 * dimensions])
    return [round(v / 32767.5 - 1.0, 6) for v in raw]


async def embeddings(request: web.Request) -> web.Response:
    body = await _payload(request)
    if isinstance(body, web.Response):
        return body
    given = body.get("input")
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        return _error(400, "input must be a string or a non-empty list of strings", "input")
    dims = body.get("dimensions", EMBED_DIMENSIONS)
    if not isinstance(dims, int) or not 1 <= dims <= 4096:
        return _error(400, "dimensions must be an integer from 1 to 4096", "dimensions")
    data = [{"object": "embedding", "index": i, "embedding": embedding_of(t, dims)} for i, t in enumerate(inputs)]
    tokens = sum(len(t.split()) for t in inputs)
    return web.Response(body=orjson.dumps({
        "object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }), content_type="application/json")


async def list_models(request: web.Request) -> web.Response:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "tokenhub-demo"} for m in request.app[_MODELS]]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def start_demo(host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[web.AppRunner, int]:
    """Start the demo provider in this process; returns its runner (call `cleanup()`) and bound port."""
    runner = web.AppRunner(create_demo_app(**options), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
