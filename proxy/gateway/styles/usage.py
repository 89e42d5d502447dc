"""Where the Anthropic Messages and OpenAI Responses APIs put usage, as metering's `UsageFormat`s
(proxy/metering/parsers.py finds the events and objects that mention usage; these read them).

- Anthropic: `message_start` carries the input side (`message.usage`), `message_delta` the cumulative
  output (and, on newer API versions, the input again); a non-streamed message has `usage` on top.
  Anthropic counts cache reads and cache writes apart from `input_tokens`; metering's `Usage` counts
  them inside `input_tokens` (`cached_input_tokens` = cache reads).
- Responses: the final `response.completed` / `response.incomplete` / `response.failed` event carries
  the response with its `usage` (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`);
  a non-streamed response has `usage` on top. `response.created` has `"usage": null` and is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.metering.parsers import UsageState
from proxy.metering.usage import Usage, openai_usage


def _count(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name) or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a token count: {name}={value!r}")
    return value


def anthropic_usage(obj: Any, *, input_from: Usage | None = None) -> Usage:
    """An Anthropic `usage` object as a Usage; `input_from` supplies the input side when `obj` (a
    `message_delta`'s usage on older API versions) has only output tokens. Raises ValueError."""
    if not isinstance(obj, Mapping):
        raise ValueError("usage is not an object")  # noqa: TRY004 - metering's parsers catch ValueError
    output = _count(obj, "output_tokens")
    if input_from is not None and "input_tokens" not in obj:
        return Usage(input_from.input_tokens, output, input_from.cached_input_tokens)
    cached = _count(obj, "cache_read_input_tokens")
    total_input = _count(obj, "input_tokens") + _count(obj, "cache_creation_input_tokens") + cached
    return Usage(input_tokens=total_input, output_tokens=output, cached_input_tokens=cached)


class AnthropicFormat:
    def from_event(self, event: Any, state: UsageState) -> bool:
        if not isinstance(event, dict):
            return False
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            state.partial = anthropic_usage(event["message"].get("usage"))
        elif kind == "message_delta" and isinstance(event.get("usage"), dict):
            state.usage = anthropic_usage(event["usage"], input_from=state.partial or Usage())
        return False  # the gateway never asks Anthropic for extra events: nothing to cut

    def from_usage(self, usage: Any, state: UsageState) -> None:
        state.usage = anthropic_usage(usage)


_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponsesFormat:
    def from_event(self, event: Any, state: UsageState) -> bool:
        if isinstance(event, dict) and event.get("type") in _FINAL_EVENTS:
            response = event.get("response")
            if isinstance(response, dict) and isinstance(response.get("usage"), dict):
                state.usage = openai_usage(response["usage"])
        return False

    def from_usage(self, usage: Any, state: UsageState) -> None:
        state.usage = openai_usage(usage)


ANTHROPIC_USAGE = AnthropicFormat()
RESPONSES_USAGE = ResponsesFormat()
