"""Logging: set up once from config; the request-id and key-id context; key material redacted everywhere."""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson
from aiohttp import web

from proxy.config import LoggingConfig
from proxy.gateway.tap import Outcome

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
KEY_ID: ContextVar[str] = ContextVar("key_id", default="-")
REQUEST_ID_KEY = web.RequestKey("request_id", str)  # the id on the request too (a RequestKey: no warning)
# How a forwarded request ended and the status the access log and metrics record for it (a stream that
# failed after its 200 head is a 502/504, a client gone mid-stream 499): set by the relay.
ENDED = web.RequestKey("ended", tuple[Outcome, int])
UPSTREAM_REQUEST_ID = web.RequestKey("upstream_request_id", str)  # the provider's own id for the request
# Request ids are correlation ids, not secrets: 128 bits from a generator seeded once per process from
# the OS (and again in a forked worker) are unique without a getrandom() system call per request (that
# call was 1.3% of the proxy's CPU under load; uuid4 costs 3× more).
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# An inbound request id goes into every log line, the provider's request and the audit trail: refuse
# anything that could be a credential (a TokenHub or provider key prefix, or a long mixed-case
# alphanumeric run such as a key's secret). UUIDs and hex ids (ours included) are fine.
_KEYLIKE_ID = re.compile(r"(?i:th-|sk-|bearer)|(?=[A-Za-z0-9]*[a-z])(?=[A-Za-z0-9]*[A-Z])[A-Za-z0-9]{20,}")
# Anything shaped like a TokenHub key or a bearer credential; aiohttp logs raw bad header lines.
_SECRETISH = re.compile(r"th-[0-9A-Za-z_]{8,}|(?i:bearer\s+)[^\s\"',;]+|sk-[0-9A-Za-z_-]{8,}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def redact(text: str) -> str:
    return _SECRETISH.sub("[redacted]", text)


class ContextFilter(logging.Filter):
    """Adds request_id and key_id to every record and redacts key material from its text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.key_id = KEY_ID.get()
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "key_id": getattr(record, "key_id", "-"),
        }
        if record.exc_text:
            out["exception"] = record.exc_text
        return orjson.dumps(out).decode()


def setup_logging(config: LoggingConfig, stream: object = None) -> logging.Handler:
    """Configure the root logger once; returns the handler (tests capture through it)."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if config.format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(key_id)s] %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler


@web.middleware
async def request_id_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    inbound = request.headers.get("X-Request-ID", "")
    if not (inbound and _SANE_REQUEST_ID.fullmatch(inbound)) or _KEYLIKE_ID.search(inbound):
        inbound = f"{_ids.getrandbits(128):032x}"
    request_id = inbound
    request[REQUEST_ID_KEY] = request_id
    REQUEST_ID.set(request_id)
    KEY_ID.set("-")
    return await handler(request)


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streamed ones and errors included, carries the id."""
    response.headers["x-request-id"] = request.get(REQUEST_ID_KEY) or REQUEST_ID.get()
