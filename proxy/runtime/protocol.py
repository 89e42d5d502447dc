"""The HTTP connection handler under `tokenhub serve`: a deadline for the first request head of every
connection, and parser errors answered without echoing the client's bytes.

aiohttp has no header-read timeout: a client that opens a connection and trickles its request head
(slowloris) would hold the connection forever. Each connection gets `head_timeout` seconds to complete
its first request head, else it is closed. Later heads on a keep-alive connection are bounded by
aiohttp's keep-alive timer, which closes a connection still waiting for a complete message
`keepalive_timeout_seconds` after the previous response, partial head or not. Request bodies are
bounded by `body_timeout_seconds` (body.py), and are read before any provider connection is used.

aiohttp answers a malformed request (bad header line, smuggling shapes such as Content-Length with
Transfer-Encoding) with a 400 whose body quotes the offending raw line, and logs that line at ERROR
with a traceback; a key inside a broken header would be echoed and logged. Here the 400 carries the
error shape with a generic message, and the log line names only the kind of error.

Both use aiohttp's `RequestHandler`/`Server` internals (`_request_count`, `_kwargs`, `_loop`); the
tests in tests/faults fail if a new aiohttp changes them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from proxy.errors import error_body

log = logging.getLogger(__name__)
_BAD_REQUEST = orjson.dumps(error_body("Malformed HTTP request.", "invalid_request_error", None, None))


class GuardedRequestHandler(RequestHandler):
    """One connection: closed unless its first request head completes within `head_timeout`."""

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._head_timeout > 0:
            self._head_deadline = self._loop.call_later(self._head_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_deadline is not None and self._request_count > 0:
            self._head_deadline.cancel()  # a complete head (or a parse error) arrived
            self._head_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _head_expired(self) -> None:
        self._head_deadline = None
        log.info("closing a connection whose request head did not arrive within %gs", self._head_timeout)
        self.force_close()
        if self.transport is not None:
            self.transport.close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # After a handler refused a body (415) aiohttp reads the rest to skip it; a body that does not
        # decode as its Content-Encoding says fails there. That is the client's mistake, not ours: one
        # line at INFO, no traceback.
        exc = kw.get("exc_info")
        if isinstance(exc, RequestPayloadError):
            log.info("closing a connection whose request body did not decode: %s", type(exc.__cause__).__name__)
            return
        super().log_exception(*args, **kw)

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status != 400 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        kind = next((line.strip() for line in (exc.message or "").splitlines() if line.strip()), "?")
        log.warning("malformed HTTP request from %s: %s", request.remote, kind.rstrip(":"))
        response = web.Response(status=400, body=_BAD_REQUEST, content_type="application/json")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server, making `GuardedRequestHandler`s."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, head_timeout=self._head_timeout, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` whose connections are `GuardedRequestHandler`s."""

    def __init__(self, app: web.Application, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._head_timeout = head_timeout

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, loop=plain._loop,
                             head_timeout=self._head_timeout, **plain._kwargs)
