"""Sending one request to a provider and relaying its response back chunk by chunk.

Timeouts: connecting is bounded by the shared session (resources.py); the first byte (the provider's
response headers) and every silence between two body chunks are bounded here, per request, by one
rescheduled `asyncio.timeout` each (the session has neither a total nor a sock_read timeout, because a
long generation is legitimate). The same timer bounds writes to the client (`[server]
client_write_timeout_seconds`): a client that stops reading loses its stream and the provider
connection is released. Redirects are never followed nor relayed: a 3xx from a provider is a 502.

How a stream ends (each one tells the tap, tap.py, exactly once, and the access log via `END_STATUS`):
- the provider's end, or the stream's own last event (`data: [DONE]`, Anthropic's `message_stop`):
  the client gets the chunked terminator at once, COMPLETED, even when the provider's connection end
  comes later (that wait goes to a background drain, never to the client) or the client leaves then;
- the provider fails, times out or drops mid-stream: an SSE error event in the OpenAI error shape, then
  the connection is closed *without* the chunked terminator, so every HTTP client sees an error
  (curl exits non-zero, the OpenAI SDK raises); recorded as 502/504, UPSTREAM_FAILED;
- the client leaves or stops reading: the provider connection is dropped (it stops generating for
  nobody), 499, CLIENT_GONE.

Cancellation: under `handler_cancellation=True` a client that disconnects cancels the handler, which
closes the upstream response here, so the provider sees its connection dropped and stops generating.
"""

from __future__ import annotations

import asyncio
import logging
import re

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.config import UpstreamConfig
from proxy.errors import ERROR_SHAPE, OPENAI_ERRORS, ProxyError, UpstreamTimeout, UpstreamUnavailable
from proxy.gateway.deadline import MovingDeadline
from proxy.gateway.headers import inbound_headers, upstream_request_id
from proxy.gateway.tap import Outcome, ResponseTap
from proxy.log import ENDED, UPSTREAM_REQUEST_ID
from proxy.state import CONFIG, root

log = logging.getLogger(__name__)
_WHOLE_ANSWER_LIMIT = 256 * 1024  # answers up to this size (with a Content-Length) are sent in one write
_DRAIN_SECONDS = 2.0  # how long a finished stream's provider connection may take to end before it is dropped
# The last event of a stream: OpenAI's `[DONE]`, Anthropic's `message_stop`.
_LAST_EVENT = re.compile(rb'(?:data: ?\[DONE\]|"type": ?"message_stop"\})\r?\n\r?\n\Z')
_DRAINS: set[asyncio.Task[None]] = set()  # strong references to background drains
_GONE = (Outcome.CLIENT_GONE, 499)  # how a request ends that was cancelled before it recorded anything


class _ProviderSilent(Exception):
    """The provider sent nothing for `idle_timeout_seconds` mid-stream."""


class _ClientStalled(Exception):
    """The client accepted nothing for `client_write_timeout_seconds`, or went away."""


async def _send(request: web.Request, session: aiohttp.ClientSession, url: str, body: bytes,
                headers: CIMultiDict[str], timeout: float, provider: str) -> aiohttp.ClientResponse:
    try:
        async with asyncio.timeout(timeout):
            # the client's method: the endpoint table admits GET and DELETE only where they belong
            return await session.request(request.method, url, data=body, headers=headers, allow_redirects=False)
    except TimeoutError:
        raise UpstreamTimeout(f"The provider {provider!r} did not answer in time.") from None
    except aiohttp.ClientError as exc:
        log.warning("provider %s unreachable: %s: %s", provider, type(exc).__name__, exc)
        if isinstance(exc, aiohttp.ClientConnectorError):  # no connection: the request never left
            request[ENDED] = (Outcome.NOT_SENT, UpstreamUnavailable.status)
        raise UpstreamUnavailable(f"The provider {provider!r} could not be reached.") from None


def _refuse_unusable(upstream: aiohttp.ClientResponse, provider: str) -> None:
    # A redirect is not followed, and not relayed either: a client following it would send its
    # TokenHub key to wherever the provider (or whoever controls its DNS) pointed.
    if 300 <= upstream.status < 400:
        log.error("provider %s answered with a redirect (%d); not followed", provider, upstream.status)
        raise UpstreamUnavailable(f"The provider {provider!r} answered with a redirect, which the gateway does "
                                  "not follow.", code="upstream_redirect")
    # A 401 from the provider means *our* credential for it is wrong. Passing it through would tell
    # the client their TokenHub key is invalid, which it is not.
    if upstream.status == 401:
        log.error("provider %s rejected the gateway's credential (401)", provider)
        raise UpstreamUnavailable(
            f"The provider {provider!r} rejected the gateway's credential. This is a gateway configuration "
            "problem, not a problem with your API key; contact the operator.", code="upstream_auth_failed")


def _started(request: web.Request, upstream: aiohttp.ClientResponse, tap: ResponseTap | None) -> None:
    found = upstream_request_id(upstream.headers)
    if found:
        request[UPSTREAM_REQUEST_ID] = found
    if tap is not None:
        tap.on_start(upstream.status, upstream.headers)


def _is_last_event(previous: bytes, chunk: bytes) -> bool:
    """Whether `chunk` (ending in a blank line) ends with the stream's last event. Two bounded
    substring searches per event chunk; the regex and any concatenation only near a marker."""
    start = len(chunk) - 40
    if start >= 0:
        if chunk.find(b"[DONE]", start) < 0 and chunk.find(b"message_stop", start) < 0:
            return False
        return _LAST_EVENT.search(chunk, start) is not None
    return _LAST_EVENT.search(previous[-40:] + chunk) is not None  # a short chunk: the marker may be split


async def _pump(upstream: aiohttp.ClientResponse, response: web.StreamResponse, idle: float,
                write_timeout: float, tap: ResponseTap | None) -> None:
    """Relay body chunks until the provider's end or the stream's last event.

    One deadline: while waiting for the provider it is due `idle` seconds later, while the client drains
    our writes `write_timeout` seconds after the provider's last chunk. Moving it is a float store, not
    a timer operation (deadline.py); chunks already received are relayed with no deadline work at all.
    """
    loop = asyncio.get_running_loop()
    content = upstream.content
    on_chunk = tap.on_chunk if tap is not None else None
    previous = b""
    waiting = False
    try:
        async with MovingDeadline(loop.time() + write_timeout, min(idle, write_timeout)) as deadline:
            while True:
                chunk = content.read_nowait()  # whatever has already arrived
                if not chunk:
                    if content.at_eof():
                        return
                    waiting = True
                    deadline.due = loop.time() + idle
                    chunk = await content.readany()
                    waiting = False
                    if not chunk:
                        return
                    deadline.due = loop.time() + write_timeout
                if on_chunk is not None:
                    chunk = on_chunk(chunk)
                try:
                    await response.write(chunk)
                except ConnectionResetError:
                    raise _ClientStalled from None
                if chunk.endswith(b"\n\n") and _is_last_event(previous, chunk):
                    return
                previous = chunk
    except TimeoutError:
        raise (_ProviderSilent if waiting else _ClientStalled)() from None


def _close_client(request: web.Request, response: web.StreamResponse) -> None:
    """End the client's connection without the chunked terminator: the body is visibly incomplete."""
    response.force_close()
    transport = request.transport
    if transport is not None:
        transport.close()  # after the bytes already written (the error event) are flushed


async def _fail_stream(request: web.Request, response: web.StreamResponse, error: ProxyError) -> None:
    if response.content_type == "text/event-stream":
        # in the inbound API's own shape (an Anthropic client gets its `event: error`)
        event = request.get(ERROR_SHAPE, OPENAI_ERRORS).stream_event(error)
        try:
            await asyncio.wait_for(response.write(b"\n\n" + event), 1.0)
        except (ConnectionResetError, TimeoutError):
            pass  # the client is gone too; closing is all that is left
    _close_client(request, response)


async def _drain(upstream: aiohttp.ClientResponse) -> None:
    """A finished stream whose provider has not ended its response yet: wait briefly so the
    connection can be reused, else drop it. Never on the client's time."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while await upstream.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        upstream.close()
        return
    upstream.release()


def _release(upstream: aiohttp.ClientResponse) -> None:
    if upstream.content.at_eof():
        upstream.release()
        return
    task = asyncio.get_running_loop().create_task(_drain(upstream))
    _DRAINS.add(task)
    task.add_done_callback(_DRAINS.discard)


async def _stream(request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse,
                  limits: UpstreamConfig, write_timeout: float, provider: str, tap: ResponseTap | None
                  ) -> None:
    try:
        await _pump(upstream, response, limits.idle_timeout_seconds, write_timeout, tap)
    except (_ProviderSilent, aiohttp.ClientError) as exc:
        silent = isinstance(exc, _ProviderSilent)
        reason = "went silent" if silent else f"failed ({type(exc).__name__})"
        log.warning("stream from provider %s %s after the response started; ending it as failed", provider, reason)
        upstream.close()
        error = (UpstreamTimeout(f"The provider {provider!r} stopped sending mid-stream.") if silent
                 else UpstreamUnavailable(f"The provider {provider!r} failed mid-stream."))
        request[ENDED] = (Outcome.UPSTREAM_FAILED, error.status)
        await _fail_stream(request, response, error)
        return
    except _ClientStalled:
        log.info("client stopped reading or went away during a stream from provider %s", provider)
        upstream.close()
        request[ENDED] = _GONE
        _close_client(request, response)
        return
    request[ENDED] = (Outcome.COMPLETED, response.status)  # the last byte is relayed, whatever the client does now
    _release(upstream)
    try:
        await response.write_eof()
    except ConnectionResetError:
        pass  # gone after the last event: still a completed answer


async def _whole(request: web.Request, upstream: aiohttp.ClientResponse, idle: float, provider: str,
                 tap: ResponseTap | None) -> web.Response:
    try:
        if upstream.content.is_eof():  # it came whole with its head (a small completion): nothing to wait for
            body = await upstream.read()
        else:
            async with asyncio.timeout(idle):
                body = await upstream.read()
    except TimeoutError:
        raise UpstreamTimeout(f"The provider {provider!r} did not finish its answer in time.") from None
    except aiohttp.ClientError as exc:
        log.warning("provider %s failed mid-answer: %s", provider, type(exc).__name__)
        raise UpstreamUnavailable(f"The provider {provider!r} failed while answering.") from None
    upstream.release()
    if tap is not None:
        body = tap.on_body(body)
    # Handed over whole: aiohttp writes it once the handler returns (in one write with the head).
    request[ENDED] = (Outcome.COMPLETED, upstream.status)
    return web.Response(status=upstream.status, reason=upstream.reason, body=body,
                        headers=inbound_headers(upstream.headers))


async def _answer(request: web.Request, upstream: aiohttp.ClientResponse, limits: UpstreamConfig,
                  write_timeout: float, provider: str, tap: ResponseTap | None) -> web.StreamResponse:
    length = upstream.content_length
    if length is not None and length <= _WHOLE_ANSWER_LIMIT:
        return await _whole(request, upstream, limits.idle_timeout_seconds, provider, tap)
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=inbound_headers(upstream.headers))
    if length is not None:
        response.content_length = length
    await response.prepare(request)
    await _stream(request, upstream, response, limits, write_timeout, provider, tap)
    return response


async def relay(request: web.Request, session: aiohttp.ClientSession, url: str, body: bytes,
                headers: CIMultiDict[str], limits: UpstreamConfig, provider: str,
                tap: ResponseTap | None = None, *, write_timeout: float | None = None) -> web.StreamResponse:
    """POST `body` to `url` and relay the provider's answer (status, allowed headers, bytes) back.

    A small answer of known length (the usual non-streamed completion) is read whole and sent in one
    write: it cannot be streamed usefully. Streams (SSE, chunked) are relayed chunk by chunk, never
    copied or held back. `tap`, if given, sees the answer as tap.py describes; its `on_end` is called
    exactly once, whatever happens (for a whole answer: when it is handed over, complete, to aiohttp).
    `write_timeout` defaults to `[server] client_write_timeout_seconds`.
    """
    if write_timeout is None:
        write_timeout = root(request)[CONFIG].server.client_write_timeout_seconds
    try:
        upstream = await _send(request, session, url, body, headers, limits.first_byte_timeout_seconds, provider)
        try:
            _started(request, upstream, tap)
            _refuse_unusable(upstream, provider)
            return await _answer(request, upstream, limits, write_timeout, provider, tap)
        except BaseException:
            upstream.close()  # drop the provider connection: it must stop working for nobody
            raise
    except ProxyError as exc:
        request.setdefault(ENDED, (Outcome.UPSTREAM_FAILED, exc.status))
        raise
    finally:
        if tap is not None:
            tap.on_end(request.get(ENDED, _GONE)[0])
