"""Sending one request to a provider and relaying its response back chunk by chunk.

Timeouts: connecting is bounded by the shared session (resources.py); the first byte (the provider's
response headers) and every silence between two body chunks are bounded here, per request, by one
rescheduled `asyncio.timeout` each (the session has neither a total nor a sock_read timeout, because a
long generation is legitimate). Before the response has started, failures become 502/504 in our error
shape; once it has started, the stream is ended (connection closed so a truncated body is visible) and
the failure logged.

Cancellation: under `handler_cancellation=True` a client that disconnects cancels the handler, which
closes the upstream response here, so the provider sees its connection dropped and stops generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.config import UpstreamConfig
from proxy.errors import UpstreamTimeout, UpstreamUnavailable
from proxy.gateway.headers import inbound_headers

log = logging.getLogger(__name__)
_STREAM_ENDED = (TimeoutError, aiohttp.ClientError, ConnectionResetError)
_WHOLE_ANSWER_LIMIT = 256 * 1024  # answers up to this size (with a Content-Length) are sent in one write


async def _send(session: aiohttp.ClientSession, url: str, body: bytes, headers: CIMultiDict[str],
                timeout: float, provider: str) -> aiohttp.ClientResponse:
    try:
        async with asyncio.timeout(timeout):
            return await session.post(url, data=body, headers=headers)
    except TimeoutError:
        raise UpstreamTimeout(f"The provider {provider!r} did not answer in time.") from None
    except aiohttp.ClientError as exc:
        log.warning("provider %s unreachable: %s: %s", provider, type(exc).__name__, exc)
        raise UpstreamUnavailable(f"The provider {provider!r} could not be reached.") from None


def _refuse_credential_failure(upstream: aiohttp.ClientResponse, provider: str) -> None:
    # A 401 from the provider means *our* credential for it is wrong. Passing it through would tell
    # the client their TokenHub key is invalid, which it is not.
    if upstream.status == 401:
        log.error("provider %s rejected the gateway's credential (401)", provider)
        raise UpstreamUnavailable(
            f"The provider {provider!r} rejected the gateway's credential. This is a gateway configuration "
            "problem, not a problem with your API key; contact the operator.", code="upstream_auth_failed")


async def _pump(upstream: aiohttp.ClientResponse, response: web.StreamResponse, idle: float) -> None:
    loop = asyncio.get_running_loop()
    content = upstream.content
    async with asyncio.timeout(None) as deadline:
        while True:
            chunk = content.read_nowait()  # whatever has already arrived: no timer needed for it
            if not chunk:
                if content.at_eof():
                    return
                deadline.reschedule(loop.time() + idle)  # only the wait for the provider is bounded,
                chunk = await content.readany()
                deadline.reschedule(None)  # not a slow client draining our writes
                if not chunk:
                    return
            await response.write(chunk)


async def _finish(upstream: aiohttp.ClientResponse, response: web.StreamResponse, idle: float,
                  provider: str) -> None:
    try:
        await _pump(upstream, response, idle)
    except _STREAM_ENDED as exc:
        if isinstance(exc, ConnectionResetError):
            log.info("client went away during a stream from provider %s", provider)
        else:
            reason = "went silent" if isinstance(exc, TimeoutError) else f"failed ({type(exc).__name__})"
            log.warning("stream from provider %s %s after the response started; ending it", provider, reason)
        upstream.close()
        response.force_close()
        with contextlib.suppress(*_STREAM_ENDED):
            await response.write_eof()
        return
    await response.write_eof()


async def _read_whole(upstream: aiohttp.ClientResponse, idle: float, provider: str) -> bytes:
    try:
        async with asyncio.timeout(idle):
            return await upstream.read()
    except TimeoutError:
        raise UpstreamTimeout(f"The provider {provider!r} did not finish its answer in time.") from None
    except aiohttp.ClientError as exc:
        log.warning("provider %s failed mid-answer: %s", provider, type(exc).__name__)
        raise UpstreamUnavailable(f"The provider {provider!r} failed while answering.") from None


async def relay(request: web.Request, session: aiohttp.ClientSession, url: str, body: bytes,
                headers: CIMultiDict[str], limits: UpstreamConfig, provider: str) -> web.StreamResponse:
    """POST `body` to `url` and stream the provider's answer (status, end-to-end headers, bytes) back.

    A small answer of known length (the usual non-streamed completion) is read whole and sent in one
    write: it cannot be streamed usefully, and one `web.Response` costs far less than a prepared
    stream's separate header, body and end writes. Streams (SSE, chunked) are relayed chunk by chunk.
    """
    upstream = await _send(session, url, body, headers, limits.first_byte_timeout_seconds, provider)
    try:
        _refuse_credential_failure(upstream, provider)
        length = upstream.content_length
        if length is not None and length <= _WHOLE_ANSWER_LIMIT:
            whole = await _read_whole(upstream, limits.idle_timeout_seconds, provider)
            upstream.release()
            return web.Response(status=upstream.status, reason=upstream.reason, body=whole,
                                headers=inbound_headers(upstream.headers))
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=inbound_headers(upstream.headers))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(request)
        await _finish(upstream, response, limits.idle_timeout_seconds, provider)
    except BaseException:
        upstream.close()  # drop the provider connection: it must stop working for nobody
        raise
    upstream.release()
    return response
