"""Helpers of the provider-style tests (tests/styles/). Recording fake upstreams that answer like the real servers: Anthropic Messages (its SSE event
sequence, its error shape, `x-api-key` and `anthropic-version` required), OpenAI Responses (stored
responses that can be read back, deleted, cancelled and continued) and Azure OpenAI (the `api-key`
header, the deployment path and the `api-version` are checked, as Azure does)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from aiohttp import web

from keystore import IssuedKey

from tests.support.fakes import Received

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ANTHROPIC_KEY = "sk-ant-provider-0123456789"
OPENAI_KEY = "sk-openai-provider-0123456789"
AZURE_KEY = "azure-provider-key-0123456789"
AZURE_VERSION = "2024-10-21"
Issue = Callable[..., Awaitable[IssuedKey]]  # the `issue` fixture: create a key through the app's KeyStore
SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class Recorder:
    """An aiohttp app that records every request; `received` in order, `last` the latest."""

    def __init__(self, credential: str) -> None:
        self.credential = credential
        self.received: list[Received] = []
        self.app = web.Application(middlewares=[self._record])
        self._ids: Iterator[int] = itertools.count(1)

    @property
    def last(self) -> Received:
        assert self.received, "the provider received nothing"
        return self.received[-1]

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):024d}"

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.path, request.query_string, request.headers, body))
        return await handler(request)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json", headers=headers)


def _event(name: str | None, data: Any) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _text(messages: Any) -> str:
    """The text of the last user message (a string or text parts)."""
    last = messages[-1] if isinstance(messages, list) and messages else {}
    content = last.get("content", "") if isinstance(last, dict) else last
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


async def _stream(request: web.Request, events: list[bytes], headers: dict[str, str] | None = None, *,
                  hold: asyncio.Event | None = None) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE | (headers or {}))
    await response.prepare(request)
    for i, event in enumerate(events):
        await response.write(event)
        if i == 0 and hold is not None:
            await hold.wait()
    await response.write_eof()
    return response


async def _broken(request: web.Request, first: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE)
    await response.prepare(request)
    await response.write(first)
    assert request.transport is not None
    request.transport.close()  # no terminating chunk: the proxy sees the provider fail mid-stream
    return response


class FakeAnthropic(Recorder):
    """`POST /v1/messages` (plain and streamed) and `/v1/messages/count_tokens`. Usage: input tokens =
    words of the prompt + 10 (cache reads 3, cache writes 2), output tokens = words of the answer."""

    def __init__(self, credential: str) -> None:
        super().__init__(credential)
        self.break_after_start = False  # drop the connection after message_start (a provider failing mid-stream)
        self.app.add_routes([web.post("/v1/messages", self.messages),
                             web.post("/v1/messages/count_tokens", self.count_tokens)])

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != self.credential:
            return _json({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
                         401)
        if not request.headers.get("anthropic-version"):
            return _json({"type": "error", "error": {"type": "invalid_request_error",
                                                     "message": "anthropic-version: header is required"}}, 400)
        return None

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        return self._refusal(request) or _json({"input_tokens": len(_text(body["messages"]).split()) + 10})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = await request.json()
        text = _text(body["messages"])
        usage = {"input_tokens": len(text.split()) + 5, "cache_creation_input_tokens": 2,
                 "cache_read_input_tokens": 3, "output_tokens": len(text.split())}
        message = {"id": self.next_id("msg"), "type": "message", "role": "assistant", "model": body["model"],
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                   "stop_sequence": None, "usage": usage}
        ids = {"request-id": self.next_id("req")}
        if not body.get("stream"):
            return _json(message, headers=ids)
        start = message | {"content": [], "stop_reason": None, "usage": usage | {"output_tokens": 1}}
        if self.break_after_start:
            return await _broken(request, _event("message_start", {"type": "message_start", "message": start}))
        words = text.split(" ")
        deltas = [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": w if i == 0 else " " + w}})
                  for i, w in enumerate(words)]
        return await _stream(request, [
            _event("message_start", {"type": "message_start", "message": start}),
            _event("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}}),
            _event("ping", {"type": "ping"}),
            *deltas,
            _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                     "stop_sequence": None}, "usage": {"output_tokens": usage["output_tokens"]}}),
            _event("message_stop", {"type": "message_stop"}),
        ], ids)


def _openai_error(status: int, message: str, param: str | None = None) -> web.Response:
    return _json({"error": {"message": message, "type": "invalid_request_error", "param": param,
                            "code": None}}, status)


class FakeResponses(Recorder):
    """The OpenAI Responses API with stored responses. Usage: input = words + 7 (cached 2), output = words."""

    def __init__(self, credential: str) -> None:
        super().__init__(credential)
        self.stored: dict[str, dict[str, Any]] = {}
        self.hold: asyncio.Event | None = None  # when set: streams wait after their first event until it is set
        self.app.add_routes([
            web.post("/v1/responses", self.create), web.get("/v1/responses/{id}", self.retrieve),
            web.delete("/v1/responses/{id}", self.delete), web.post("/v1/responses/{id}/cancel", self.cancel),
            web.get("/v1/responses/{id}/input_items", self.input_items),
            web.post("/v1/chat/completions", self.chat),
        ])

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.credential}"

    def _find(self, request: web.Request) -> dict[str, Any] | web.Response:
        if not self._authorised(request):
            return _openai_error(401, "Incorrect API key provided")
        found = self.stored.get(request.match_info["id"])
        return found if found is not None else _openai_error(
            404, f"Response with id '{request.match_info['id']}' not found.")

    async def create(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return _openai_error(401, "Incorrect API key provided")
        body = await request.json()
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            return _openai_error(404, f"Previous response with id '{previous}' not found.", "previous_response_id")
        text = body["input"] if isinstance(body["input"], str) else _text(body["input"])
        words = len(text.split())
        item = {"id": self.next_id("msg"), "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
        response = {"id": self.next_id("resp"), "object": "response", "created_at": 1700000000,
                    "status": "completed", "model": body["model"], "output": [item], "error": None,
                    "incomplete_details": None, "instructions": None, "metadata": {}, "parallel_tool_calls": True,
                    "temperature": 1.0, "tool_choice": "auto", "tools": [], "top_p": 1.0,
                    "previous_response_id": previous,
                    "usage": {"input_tokens": words + 7, "input_tokens_details": {"cached_tokens": 2},
                              "output_tokens": words, "output_tokens_details": {"reasoning_tokens": 0},
                              "total_tokens": 2 * words + 7}}
        self.stored[response["id"]] = response
        if not body.get("stream"):
            return _json(response)
        early = response | {"status": "in_progress", "output": [], "usage": None}
        events = [("response.created", {"response": early}), ("response.in_progress", {"response": early}),
                  ("response.output_text.delta", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                                  "delta": text, "logprobs": []}),
                  ("response.completed", {"response": response})]
        return await _stream(request, [_event(name, {"type": name, "sequence_number": i} | data)
                                       for i, (name, data) in enumerate(events)], hold=self.hold)

    async def retrieve(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return found if isinstance(found, web.Response) else _json(found)

    async def delete(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        del self.stored[found["id"]]
        return _json({"id": found["id"], "object": "response.deleted", "deleted": True})

    async def cancel(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return found if isinstance(found, web.Response) else _json(found | {"status": "cancelled"})

    async def input_items(self, request: web.Request) -> web.Response:
        found = self._find(request)
        if isinstance(found, web.Response):
            return found
        return _json({"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False})

    async def chat(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _openai_error(401, "Incorrect API key provided")
        return _json({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "x", "choices": []})


class FakeAzure(Recorder):
    """Azure OpenAI: `{base}/openai/deployments/{deployment}/chat/completions|embeddings?api-version=…`
    with the `api-key` header, and `/openai/responses?api-version=…`; anything else as Azure answers it."""

    def __init__(self, credential: str, api_version: str, deployments: dict[str, str]) -> None:
        super().__init__(credential)
        self.api_version = api_version
        self.deployments = deployments  # deployment name -> the model behind it
        self.app.add_routes([
            web.post("/openai/deployments/{deployment}/chat/completions", self.chat),
            web.post("/openai/deployments/{deployment}/embeddings", self.embeddings),
        ])

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("api-key") != self.credential:
            return _json({"error": {"code": "401", "message": "Access denied due to invalid subscription key or "
                                    "wrong API endpoint."}}, 401)
        if request.query.get("api-version") != self.api_version:
            return _json({"error": {"code": "404", "message": "Resource not found"}}, 404)
        if request.match_info["deployment"] not in self.deployments:
            return _json({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this "
                                    "resource does not exist."}}, 404)
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = await request.json()
        text = _text(body["messages"])
        model = self.deployments[request.match_info["deployment"]]
        usage = {"prompt_tokens": len(text.split()) + 4, "completion_tokens": len(text.split()),
                 "total_tokens": 2 * len(text.split()) + 4}
        base = {"id": self.next_id("chatcmpl"), "created": 1700000000, "model": model, "system_fingerprint": None}
        if not body.get("stream"):
            return _json(base | {"object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})
        chunk = base | {"object": "chat.completion.chunk"}
        events = [_event(None, chunk | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                                     "finish_reason": None}]}),
                  _event(None, chunk | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(_event(None, chunk | {"choices": [], "usage": usage}))
        return await _stream(request, [*events, b"data: [DONE]\n\n"])

    async def embeddings(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return _json({"object": "list", "model": self.deployments[request.match_info["deployment"]],
                      "data": [{"object": "embedding", "index": i, "embedding": [0.5, float(i)]}
                               for i in range(len(inputs))],
                      "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
