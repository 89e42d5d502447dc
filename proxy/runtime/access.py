"""The access log: one line per request, formatted directly and written in batches.

Going through `logging` for every request (caller lookup, record, filters, formatter, a locked,
flushed write) cost about 50 µs a line, a tenth of the proxy's CPU under load. Here a line is built
with orjson in a few microseconds and lines are written together, at most `flush_seconds` late. The
line has the same fields as every other JSON log line (plus the provider's own request id and, when
a forwarded request did not simply complete, its outcome); the path is logged without its query
string and redacted like any message, so no key material reaches the log.

Exactly one line per request, with its true status, also in `tokenhub_requests_total`: the proxy
app's `RequestLog` middleware records every request that reaches it, cancelled ones included (aiohttp
logs nothing for a handler cancelled by a client disconnect), with the status the relay recorded
(`ENDED`: a stream that failed after its 200 head is a 502/504; one whose last byte was relayed is a
success whatever the client did next). aiohttp's own access hook then only logs what never reached
an application (a malformed request answered by the parser) and the admin listener.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TextIO

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware

from proxy.gateway.tap import Outcome
from proxy.log import ENDED, KEY_ID, REQUEST_ID, UPSTREAM_REQUEST_ID, redact
from proxy.metering.meter import METERED
from proxy.runtime.metrics import Metrics

_FLUSH_BYTES = 64 * 1024
_LOGGED = web.RequestKey("access_logged", bool)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessSink:
    """Buffers access lines and writes them to `stream` in batches."""

    def __init__(self, stream: TextIO, *, json: bool, enabled: bool, flush_seconds: float = 0.25) -> None:
        self._stream, self._json, self.enabled = stream, json, enabled
        self._flush_seconds = flush_seconds
        self._lines: list[str] = []
        self._size = 0
        self._pending: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:
        """As the other log lines: RFC 3339 UTC in JSON, logging's local `asctime` in text."""
        second = int(now)
        if second != self._second:  # strftime once a second, not once a line
            self._stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) if self._json
                           else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
            self._second = second
        ms = int((now - second) * 1000)
        return f"{self._stamp}.{ms:03d}+00:00" if self._json else f"{self._stamp},{ms:03d}"

    def record(self, method: str, path: str, status: int, seconds: float, *, upstream_id: str = "",
               outcome: str = "", usage: Mapping[str, Any] | None = None) -> None:
        if "th-" in path or "sk-" in path:
            path = redact(path)
        message = f"{method} {path} {status} {seconds * 1000:.1f}ms"
        if outcome:
            message = f"{message} {outcome}"
        when = self._time(time.time())
        if self._json:
            fields = {"time": when, "level": "INFO", "logger": "tokenhub.access", "message": message,
                      "request_id": REQUEST_ID.get(), "key_id": KEY_ID.get(), "status": status}
            if upstream_id:
                fields["upstream_request_id"] = upstream_id
            if usage:
                fields.update(usage)
            line = orjson.dumps(fields).decode()
        else:
            tail = f" upstream_request_id={upstream_id}" if upstream_id else ""
            tail += "".join(f" {k}={v}" for k, v in (usage or {}).items() if v is not None)
            line = f"{when} INFO tokenhub.access [{REQUEST_ID.get()} {KEY_ID.get()}] {message}{tail}"
        self._lines.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_BYTES:
            self.flush()
        elif self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self._flush_seconds, self.flush)

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._lines:
            self._stream.write("\n".join(self._lines) + "\n")
            self._stream.flush()
            self._lines, self._size = [], 0


def access_logger_class(sink: AccessSink) -> type[AbstractAccessLogger]:
    """aiohttp makes one access logger per connection from a class; this one writes to `sink`."""

    class AccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            if _LOGGED not in request:  # else the RequestLog middleware has logged it already
                sink.record(request.method, request.path, response.status, time)

        @property
        def enabled(self) -> bool:
            return sink.enabled

    return AccessLogger


class RequestLog:
    """The proxy app's outermost recording middleware: every request that reaches the app is counted
    in the metrics and written to the access log (when a sink is attached) exactly once."""

    def __init__(self, metrics: Metrics, sink: AccessSink | None = None) -> None:
        self.metrics, self.sink = metrics, sink

    def _finish(self, request: web.Request, status: int, started: float, gone: bool = False) -> None:
        seconds = time.perf_counter() - started
        metrics = self.metrics
        metrics.in_flight -= 1  # plain numbers, copied into Prometheus when it is read (runtime/metrics.py)
        metrics.observe(request, status, seconds)
        request[_LOGGED] = True
        sink = self.sink
        if sink is not None and sink.enabled:
            ended = request.get(ENDED)
            if ended is None:
                outcome = Outcome.CLIENT_GONE.value if gone else ""
            else:
                outcome = ended[0].value if ended[0] is not Outcome.COMPLETED else ""
            metered = request.get(METERED)  # metering's figure (proxy/metering/tap.py)
            sink.record(request.method, request.path, status, seconds,
                        upstream_id=request.get(UPSTREAM_REQUEST_ID, ""), outcome=outcome,
                        usage=metered.log_fields() if metered is not None else None)

    def middleware(self) -> Middleware:
        @web.middleware
        async def access_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            self.metrics.in_flight += 1
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self._finish(request, exc.status, started)
                raise
            except asyncio.CancelledError:  # the client went away (unless the relay says otherwise)
                ended = request.get(ENDED)
                self._finish(request, ended[1] if ended is not None else 499, started, gone=True)
                raise
            except BaseException:
                self._finish(request, 500, started)
                raise
            ended = request.get(ENDED)
            self._finish(request, ended[1] if ended is not None else response.status, started)
            return response

        return access_mw
