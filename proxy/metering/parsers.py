"""Reading the provider's usage figure out of the relayed bytes, on the way through.

One `UsageParser` per request, chosen when the provider's response starts: `SseParser` for an event
stream, `JsonParser` for anything else. Both are fed the very chunks the relay sends on and hand them
back untouched (same object), with one exception: a usage-only event the gateway itself asked for
(`stream_options.include_usage` injected) is cut out, so the client sees what it would have seen
without the gateway.

How a style's answers carry usage is a `UsageFormat` (OpenAI's is `OPENAI`); the Anthropic and
Responses formats implement the same two methods. Neither parser decodes a whole body or every event:
only an event or object in which the bytes `"usage"` are followed by `{` is parsed at all.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import Any, Protocol

import orjson

from proxy.metering.usage import Usage, openai_usage

log = logging.getLogger(__name__)
NEEDLE = b'"usage"'
_NULL_USAGE = b'"usage":null'
MAX_EVENT_BYTES = 1024 * 1024  # an event longer than this is passed on unread (and counted unreadable)
_TAIL_BYTES = 16 * 1024  # how much of a non-streamed answer's end is kept (by reference) to find its usage
_USAGE_BYTES = 64 * 1024  # a usage object is a few hundred bytes: never decode more than this of a body
_SPACE = b" \t\r\n"
_DECODER = json.JSONDecoder()


class UsageState:
    """What a parser has learnt so far. `usage` is the provider's final figure; `partial` what was known
    before it (e.g. input tokens announced at the start of a stream), charged when the end never came."""

    __slots__ = ("partial", "unreadable", "usage")

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.partial: Usage | None = None
        self.unreadable = False


class UsageFormat(Protocol):
    """Where one provider style puts usage."""

    def from_event(self, event: Any, state: UsageState) -> bool:
        """A parsed SSE `data:` object that mentions usage. Updates `state`; returns True when the event
        carries nothing but the usage the gateway asked for (it is then cut from the client's stream)."""
        ...

    def from_usage(self, usage: Any, state: UsageState) -> None:
        """The top-level `usage` object of a non-streamed answer."""
        ...


class OpenAIFormat:
    """Chat completions, completions and embeddings: `usage` on the answer; in a stream, a last chunk
    with `"choices": []` and the usage (when `stream_options.include_usage` was asked for)."""

    def from_event(self, event: Any, state: UsageState) -> bool:
        if not isinstance(event, dict) or not isinstance(event.get("usage"), dict):
            return False
        state.usage = openai_usage(event["usage"])
        return event.get("choices") == []

    def from_usage(self, usage: Any, state: UsageState) -> None:
        state.usage = openai_usage(usage)


OPENAI = OpenAIFormat()


class UsageParser(Protocol):
    state: UsageState

    def feed(self, chunk: bytes) -> bytes: ...

    def whole(self, body: bytes) -> bytes: ...

    def finish(self) -> None: ...


def usage_object_at(data: bytes, pos: int) -> int:
    """Where the object value of the `"usage"` key at `pos` starts, or -1 (null, a string, not a key)."""
    i = pos + len(NEEDLE)
    n = len(data)
    while i < n and data[i] in _SPACE:
        i += 1
    if i >= n or data[i] != 0x3A:  # ':'
        return -1
    i += 1
    while i < n and data[i] in _SPACE:
        i += 1
    return i if i < n and data[i] == 0x7B else -1  # '{'


class JsonParser:
    """A non-streamed answer: the last top-level-looking `"usage": {…}` in its final bytes."""

    def __init__(self, fmt: UsageFormat) -> None:
        self.state = UsageState()
        self._fmt = fmt
        self._window: deque[bytes] = deque()  # references to the last chunks, about _TAIL_BYTES in all
        self._held = 0

    def feed(self, chunk: bytes) -> bytes:
        self._window.append(chunk)
        self._held += len(chunk)
        while self._held - len(self._window[0]) >= _TAIL_BYTES:
            self._held -= len(self._window.popleft())
        return chunk

    def whole(self, body: bytes) -> bytes:
        self._read(body)
        return body

    def finish(self) -> None:
        if self._window:
            self._read(b"".join(self._window))
            self._window.clear()

    def _read(self, data: bytes) -> None:
        pos = data.rfind(NEEDLE)
        while pos >= 0:
            start = usage_object_at(data, pos)
            if start >= 0:
                try:
                    obj, _ = _DECODER.raw_decode(data[start:start + _USAGE_BYTES].decode("utf-8", "replace"))
                    self._fmt.from_usage(obj, self.state)
                except (TypeError, ValueError) as exc:
                    log.warning("could not read the usage of an answer: %s", str(exc)[:200])
                    self.state.unreadable = True
                return
            pos = data.rfind(NEEDLE, 0, pos)


def _boundary_after(data: bytes, start: int) -> int:
    """The index just past the first blank line at or after `start`, or -1."""
    a, b = data.find(b"\n\n", start), data.find(b"\r\n\r\n", start)
    if a < 0:
        return -1 if b < 0 else b + 4
    return a + 2 if b < 0 or a < b else b + 4


def _boundary_before(data: bytes, pos: int) -> int:
    """The index just past the last blank line before `pos` (0 when none)."""
    a, b = data.rfind(b"\n\n", 0, pos), data.rfind(b"\r\n\r\n", 0, pos)
    return max(a + 2 if a >= 0 else 0, b + 4 if b >= 0 else 0)


def _last_boundary(data: bytes) -> int:
    return _boundary_before(data, len(data))


def _event_data(event: bytes) -> bytes:
    lines = [ln[5:].removeprefix(b" ") for ln in event.replace(b"\r\n", b"\n").split(b"\n")
             if ln.startswith(b"data:")]
    return b"\n".join(lines)


class SseParser:
    """An event stream, read event by event without holding any complete event back.

    With `strip=False` every chunk is returned as it came; an event split across chunks is kept (by a
    copy of its first part) only to be read. With `strip=True` (the gateway injected the usage request)
    the usage-only event is cut out; since that needs the event whole, an incomplete event at the end
    of a chunk is sent with the chunk that completes it. An SSE client cannot act on an event before its
    blank line anyway, so nothing it could use is delayed.
    """

    def __init__(self, fmt: UsageFormat, *, strip: bool) -> None:
        self.state = UsageState()
        self._fmt, self._strip = fmt, strip
        self._tail = b""
        self._gave_up = False

    def feed(self, chunk: bytes) -> bytes:
        if self._gave_up:
            return chunk
        if not self._tail and chunk.endswith(b"\n\n") and chunk.count(NEEDLE) == chunk.count(_NULL_USAGE):
            return chunk  # the usual chunk: whole events, no usage in them (or `"usage":null`, once asked)
        data = self._tail + chunk if self._tail else chunk
        cut = _last_boundary(data)
        complete, self._tail = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
        if len(self._tail) > MAX_EVENT_BYTES:
            return self._give_up(chunk, data)
        kept = self._scan(complete)
        if not self._strip:
            return chunk
        return kept

    def whole(self, body: bytes) -> bytes:
        out = self.feed(body)
        rest = self._tail
        self.finish()
        return out + rest if self._strip and rest else out

    def finish(self) -> None:
        """End of stream: an incomplete last event is still read. (When stripping, a streamed one is not
        sent: the relay has nothing left to send it with, and an SSE client discards an event that
        never ended anyway.)"""
        rest, self._tail = self._tail, b""
        if rest and NEEDLE in rest:
            self._scan(rest + b"\n\n")

    def _give_up(self, chunk: bytes, data: bytes) -> bytes:
        log.warning("an event of more than %d bytes in a stream; its usage is not read", MAX_EVENT_BYTES)
        self._gave_up, self._tail = True, b""
        self.state.unreadable = True
        return data if self._strip else chunk

    def _scan(self, data: bytes) -> bytes:
        """Read every usage-carrying event in `data` (whole events); returns `data` without the event
        the gateway injected (the same object when nothing is cut)."""
        pos = data.find(NEEDLE)
        while pos >= 0:
            end = _boundary_after(data, pos)
            end = len(data) if end < 0 else end
            if usage_object_at(data, pos) >= 0:
                start = _boundary_before(data, pos)
                if self._read_event(data[start:end]) and self._strip:
                    data = data[:start] + data[end:]
                    end = start
            pos = data.find(NEEDLE, end)
        return data

    def _read_event(self, event: bytes) -> bool:
        try:
            return self._fmt.from_event(orjson.loads(_event_data(event)), self.state)
        except (TypeError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
            log.warning("could not read a usage event: %s", str(exc)[:200])
            self.state.unreadable = True
            return False
