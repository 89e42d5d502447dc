"""`MeteringTap`: the `ResponseTap` that meters one forwarded request.

It picks a parser when the provider's answer starts (event stream or not), passes every chunk through
it, and at the end turns what was read and how the request ended into one `Metered` figure, which it
hands to the `Meter` and leaves on the request for the access log.

For code that reconciles against the figure (limits): after `relay()` has returned or raised,
`tap.result` is the `Metered` of the request (None only if the relay never ended it). `result.usage`
is what was charged: the provider's complete figure when `result.reason` is None, otherwise what was
known (e.g. the input tokens of a stream the client left), possibly only the request itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from multidict import CIMultiDictProxy

from proxy.gateway.tap import Outcome
from proxy.metering.parsers import JsonParser, SseParser, UsageFormat, UsageParser
from proxy.metering.usage import Price, Unmetered, Usage

log = logging.getLogger(__name__)
_NOTHING = Usage()  # one request, no tokens known
# Where providers put their own request id (OpenAI, Anthropic, Azure).
_PROVIDER_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id")
_ENDED_EARLY = {Outcome.CLIENT_GONE: Unmetered.CLIENT_GONE, Outcome.UPSTREAM_FAILED: Unmetered.UPSTREAM_FAILED}


@dataclass(frozen=True, slots=True)
class Metered:
    """One request's metering: what was charged, and why it is incomplete (None: it is complete)."""

    usage: Usage
    reason: Unmetered | None
    usd: Decimal | None
    provider_request_id: str | None

    def log_fields(self) -> dict[str, Any]:
        u = self.usage
        return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                "cached_input_tokens": u.cached_input_tokens, "usd": None if self.usd is None else float(self.usd),
                "unmetered": None if self.reason is None else self.reason.value}


class MeteringTap:
    """One per request; see the module docstring. Never raises into the relay."""

    def __init__(self, fmt: UsageFormat, *, strip: bool, price: Price | None, record: Callable[[Metered], None],
                 request: MutableMapping[Any, Any] | None = None, slot: Any = None) -> None:
        self._fmt, self._strip, self._price, self._record = fmt, strip, price, record
        self._request, self._slot = request, slot
        self._parser: UsageParser | None = None
        self._status = 0
        self._provider_id: str | None = None
        self.result: Metered | None = None

    def on_start(self, status: int, headers: CIMultiDictProxy[str]) -> None:
        self._status = status
        self._provider_id = next((headers[h] for h in _PROVIDER_ID_HEADERS if h in headers), None)
        if headers.get("Content-Type", "").startswith("text/event-stream"):
            self._parser = SseParser(self._fmt, strip=self._strip)
        else:
            self._parser = JsonParser(self._fmt)

    def on_chunk(self, chunk: bytes) -> bytes:
        if self._parser is None:
            return chunk
        try:
            return self._parser.feed(chunk)
        except Exception:  # a reader's bug must never break the client's stream
            log.exception("usage parser failed on a chunk; the request is left unmetered")
            self._parser.state.unreadable = True
            self._parser = None
            return chunk

    def on_body(self, body: bytes) -> bytes:
        if self._parser is None:
            return body
        try:
            return self._parser.whole(body)
        except Exception:  # as on_chunk
            log.exception("usage parser failed on an answer; the request is left unmetered")
            self._parser.state.unreadable = True
            return body

    def on_end(self, outcome: Outcome) -> None:
        if self.result is not None or outcome is Outcome.NOT_SENT:
            return  # refused before the provider: nothing was used
        try:
            self.result = self._conclude(outcome)
            self._record(self.result)
        except Exception:  # metering must not turn a served request into an error
            log.exception("metering a request failed")
        if self._request is not None and self.result is not None:
            self._request[self._slot] = self.result

    def _conclude(self, outcome: Outcome) -> Metered:
        parser = self._parser
        if parser is not None:
            parser.finish()
        state = parser.state if parser is not None else None
        if state is not None and state.usage is not None:
            return self._metered(state.usage, None)
        known = state.partial if state is not None and state.partial is not None else _NOTHING
        if outcome in _ENDED_EARLY:
            reason = _ENDED_EARLY[outcome]
        elif self._status >= 400:
            reason = Unmetered.PROVIDER_ERROR
        elif state is not None and state.unreadable:
            reason = Unmetered.UNREADABLE
        else:
            reason = Unmetered.NO_USAGE
        return self._metered(known, reason)

    def _metered(self, usage: Usage, reason: Unmetered | None) -> Metered:
        usd = None if self._price is None else self._price.cost(usage)
        return Metered(usage, reason, usd, self._provider_id)
