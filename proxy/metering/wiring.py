"""The request path's one call into metering: `metering_tap()` before a request is sent; `combine()`
puts it on the relay together with any other tap."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from proxy.gateway.providers import Route
from proxy.gateway.tap import Outcome, ResponseTap
from proxy.metering.meter import ask_for_usage
from proxy.metering.parsers import OPENAI, UsageFormat
from proxy.metering.tap import MeteringTap
from proxy.state import METER, root


def metering_tap(request: web.Request, key_id: str, route: Route, body: dict[str, Any] | None,
                 fmt: UsageFormat | None = OPENAI, *, ask_usage: bool = True) -> MeteringTap | None:
    """The tap metering this request (None when metering is off or the endpoint reports no usage).

    Call it after `body` is final but before it is serialised: for a stream that did not ask for
    usage (and `ask_usage`, the endpoint's `stream_options.include_usage`), it asks, and the tap then
    cuts the answer to that question from the client's stream."""
    meter = root(request).get(METER)
    if meter is None or fmt is None or not meter.config.enabled:
        return None
    strip = ask_usage and body is not None and meter.config.inject_stream_usage and ask_for_usage(body)
    return meter.tap(request, key_id, route.provider.name, route.model, route.full, fmt, strip=strip)


class _Taps:
    """Several taps on one relay, called in order (each chunk passes through every one)."""

    def __init__(self, taps: list[ResponseTap]) -> None:
        self._taps = taps

    def on_start(self, status: int, headers: CIMultiDictProxy[str]) -> None:
        for tap in self._taps:
            tap.on_start(status, headers)

    def on_chunk(self, chunk: bytes) -> bytes:
        for tap in self._taps:
            chunk = tap.on_chunk(chunk)
        return chunk

    def on_body(self, body: bytes) -> bytes:
        for tap in self._taps:
            body = tap.on_body(body)
        return body

    def on_end(self, outcome: Outcome) -> None:
        for tap in self._taps:
            tap.on_end(outcome)


def combine(*taps: ResponseTap | None) -> ResponseTap | None:
    """One tap for the relay out of those given (None ones skipped); None when there are none."""
    present = [t for t in taps if t is not None]
    if len(present) <= 1:
        return present[0] if present else None
    return _Taps(present)
