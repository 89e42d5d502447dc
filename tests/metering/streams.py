"""Provider answers as OpenAI sends them (field order, `"usage": null` on every chunk once usage is asked
for, the usage-only last chunk with `"choices": []`), for the parser tests and the recording upstream."""

from __future__ import annotations

from typing import Any

import orjson

USAGE = {"prompt_tokens": 19, "completion_tokens": 3, "total_tokens": 22,
         "prompt_tokens_details": {"cached_tokens": 6, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                       "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
EMBED_USAGE = {"prompt_tokens": 8, "total_tokens": 8}
WORDS = ("Hello", " there", "!")


def _event(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def chat_events(model: str, *, with_usage: bool, usage: dict[str, Any] | None = None) -> list[bytes]:
    """The events of a streamed chat completion; with `with_usage` (include_usage asked), every chunk
    carries `"usage": null` and a last chunk carries the usage."""
    head = {"id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": 1764400000, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_5ad2f6a9e1"}
    tail = {"usage": None} if with_usage else {}
    deltas = [{"role": "assistant", "content": "", "refusal": None}] + [{"content": w} for w in WORDS]
    events = [_event(head | {"choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]} | tail)
              for d in deltas]
    events.append(_event(head | {"choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
                         | tail))
    if with_usage:
        events.append(_event(head | {"choices": [], "usage": usage or USAGE}))
    return [*events, b"data: [DONE]\n\n"]


def completion_events(model: str, *, with_usage: bool) -> list[bytes]:
    head = {"id": "cmpl-XyZ789", "object": "text_completion", "created": 1764400000, "model": model,
            "system_fingerprint": "fp_5ad2f6a9e1"}
    tail = {"usage": None} if with_usage else {}
    events = [_event(head | {"choices": [{"text": w, "index": 0, "logprobs": None, "finish_reason": None}]} | tail)
              for w in WORDS]
    events.append(_event(head | {"choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}]}
                         | tail))
    if with_usage:
        events.append(_event(head | {"choices": [], "usage": USAGE}))
    return [*events, b"data: [DONE]\n\n"]


def chat_body(model: str, text: str = "".join(WORDS)) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-AbC123", "object": "chat.completion", "created": 1764400000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                             "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
        "usage": USAGE, "service_tier": "default", "system_fingerprint": "fp_5ad2f6a9e1"})


def completion_body(model: str) -> bytes:
    return orjson.dumps({
        "id": "cmpl-XyZ789", "object": "text_completion", "created": 1764400000, "model": model,
        "choices": [{"text": "".join(WORDS), "index": 0, "logprobs": None, "finish_reason": "length"}],
        "usage": USAGE, "system_fingerprint": "fp_5ad2f6a9e1"})


def embeddings_body(model: str, n: int = 2, dims: int = 8) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": [0.001 * (i + j) for j in range(dims)]} for i in range(n)]
    return orjson.dumps({"object": "list", "data": data, "model": model, "usage": EMBED_USAGE})
