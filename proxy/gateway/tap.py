"""The one observer on a relayed answer: metering and limits read the provider's answer through it.

The relay (relay.py) calls a tap, when the request has one, in this order:

1. `on_start(status, headers)` once the provider's response head has arrived;
2. `on_chunk(chunk)` for every body chunk of a streamed answer, *before* it is written to the client,
   or `on_body(body)` once for an answer read whole; each returns the bytes to send on (normally the
   very same object: a tap must not copy, buffer or delay; it may drop bytes the gateway itself asked
   for, such as a usage chunk the client did not request);
3. `on_end(outcome)` exactly once, whatever happened (also when the provider was never reached).

A tap never raises into the relay: a reader that cannot make sense of the bytes records that it could
not meter them and passes them on untouched.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from multidict import CIMultiDictProxy


class Outcome(StrEnum):
    """How a forwarded request ended, as far as the provider's answer goes."""

    COMPLETED = "completed"  # the provider's answer was relayed to its last byte
    UPSTREAM_FAILED = "upstream_failed"  # the provider failed, timed out or broke the stream
    CLIENT_GONE = "client_gone"  # the client went away (or stopped reading) before the end
    NOT_SENT = "not_sent"  # refused before the provider was contacted


class ResponseTap(Protocol):
    def on_start(self, status: int, headers: CIMultiDictProxy[str]) -> None: ...

    def on_chunk(self, chunk: bytes) -> bytes: ...

    def on_body(self, body: bytes) -> bytes: ...

    def on_end(self, outcome: Outcome) -> None: ...
