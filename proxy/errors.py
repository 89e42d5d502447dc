"""The proxy's error tree, the keystore → proxy mapping, and the middleware that renders every error
we create in the OpenAI shape `{"error": {"message", "type", "param", "code"}}`.

    ProxyError (500 server_error)
    ├── InvalidRequest        400 invalid_request_error
    ├── AuthenticationFailed  401 authentication_error / invalid_api_key
    ├── Forbidden             403 permission_error / model_not_allowed
    ├── NotFound              404 not_found_error
    ├── RequestTimeout        408 invalid_request_error / request_timeout
    ├── PayloadTooLarge       413 invalid_request_error / request_too_large
    ├── Conflict              409 invalid_request_error / conflict
    ├── UnsupportedMediaType  415 invalid_request_error / unsupported_content_encoding
    ├── TooManyRequests       429 rate_limit_error
    ├── UpstreamUnavailable   502 api_error / upstream_unavailable
    ├── ServiceUnavailable    503 api_error / service_unavailable
    └── UpstreamTimeout       504 api_error / upstream_timeout

Upstream responses, errors included, are never reshaped here: they pass through untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

import keystore

from proxy.log import REQUEST_ID

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_AUTH_MESSAGE = "Invalid API key. Check the key you are sending; it may be wrong, revoked or expired."


class ProxyError(Exception):
    status = 500
    error_type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param
        self.headers = headers or {}
        if code is not None:
            self.code = code


class InvalidRequest(ProxyError):
    status, error_type = 400, "invalid_request_error"


class AuthenticationFailed(ProxyError):
    status, error_type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(ProxyError):
    status, error_type, code = 403, "permission_error", "model_not_allowed"


class NotFound(ProxyError):
    status, error_type, code = 404, "not_found_error", "not_found"


class RequestTimeout(ProxyError):
    status, error_type, code = 408, "invalid_request_error", "request_timeout"


class PayloadTooLarge(ProxyError):
    status, error_type, code = 413, "invalid_request_error", "request_too_large"


class UnsupportedMediaType(ProxyError):
    status, error_type, code = 415, "invalid_request_error", "unsupported_content_encoding"


class Conflict(ProxyError):
    status, error_type, code = 409, "invalid_request_error", "conflict"


class TooManyRequests(ProxyError):
    status, error_type, code = 429, "rate_limit_error", "rate_limited"


class UpstreamUnavailable(ProxyError):
    status, error_type, code = 502, "api_error", "upstream_unavailable"


class ServiceUnavailable(ProxyError):
    status, error_type, code = 503, "api_error", "service_unavailable"


class UpstreamTimeout(ProxyError):
    status, error_type, code = 504, "api_error", "upstream_timeout"


def _auth_failed(exc: keystore.KeystoreError) -> ProxyError:
    # The secret matched for revoked/expired keys, so saying which is no oracle for an attacker.
    if isinstance(exc, keystore.RevokedKey):
        return AuthenticationFailed("This API key has been revoked.")
    if isinstance(exc, keystore.ExpiredKey):
        return AuthenticationFailed("This API key has expired.")
    return AuthenticationFailed(PUBLIC_AUTH_MESSAGE)


def _rate_limited(exc: keystore.KeystoreError) -> ProxyError:
    retry = getattr(exc, "retry_after", 60)
    return TooManyRequests("Too many failed attempts with this key; try again later.",
                           headers={"Retry-After": str(int(retry))})


def _invalid(exc: keystore.KeystoreError) -> ProxyError:
    return InvalidRequest(str(exc), param=getattr(exc, "field", None))


_FROM_KEYSTORE: dict[type[keystore.KeystoreError], Callable[[keystore.KeystoreError], ProxyError]] = {
    keystore.MalformedKey: _auth_failed,
    keystore.UnknownKey: _auth_failed,
    keystore.RevokedKey: _auth_failed,
    keystore.ExpiredKey: _auth_failed,
    keystore.RateLimited: _rate_limited,
    keystore.NotFound: lambda e: NotFound(str(e), code="key_not_found"),
    keystore.InvalidInput: _invalid,
    keystore.Conflict: lambda e: Conflict(str(e), param="id", code="key_revoked"),
    keystore.StorageUnavailable: lambda e: ServiceUnavailable(
        "The key store is temporarily unavailable; the key could not be checked. Retry shortly.",
        headers={"Retry-After": "1"}),
    keystore.KeystoreError: lambda e: ProxyError("internal keystore error"),
}


def from_keystore(exc: keystore.KeystoreError) -> ProxyError:
    """Translate along the exception's MRO, so a new subclass maps like its parent."""
    for cls in type(exc).__mro__:
        if cls in _FROM_KEYSTORE:
            return _FROM_KEYSTORE[cls](exc)
    return ProxyError("internal error")


def error_body(message: str, error_type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class ErrorShape:
    """How the errors we create are written for one inbound API: OpenAI's shape here; a provider style
    whose clients expect another (Anthropic's on /v1/messages) subclasses it. The request path puts the
    endpoint's shape on the request (`ERROR_SHAPE`) before authenticating, so every error we create on
    that endpoint, 401s included, comes out in the shape its SDK parses."""

    def body(self, exc: ProxyError) -> dict[str, Any]:
        return error_body(exc.message, exc.error_type, exc.param, exc.code)

    def stream_event(self, exc: ProxyError) -> bytes:
        """The SSE event that tells a streaming client the answer failed after it started."""
        return b"data: " + orjson.dumps(self.body(exc)) + b"\n\n"


OPENAI_ERRORS = ErrorShape()
ERROR_SHAPE = web.RequestKey("error_shape", ErrorShape)


def render(exc: ProxyError, shape: ErrorShape = OPENAI_ERRORS) -> web.Response:
    response = web.Response(
        status=exc.status, body=orjson.dumps(shape.body(exc)),
        content_type="application/json", headers=exc.headers,
    )
    if exc.headers.get("Connection", "").lower() == "close":
        response.force_close()  # the header alone does not make aiohttp close the connection
    return response


_HTTP_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
               429: "rate_limit_error"}


def _from_http(exc: web.HTTPException) -> ProxyError:
    err = ProxyError(exc.reason if exc.status != 404 else "Unknown path.", code=None)
    err.status, err.error_type = exc.status, _HTTP_TYPES.get(exc.status, "api_error")
    err.headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return err


@web.middleware
async def error_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProxyError as exc:
        return render(exc, request.get(ERROR_SHAPE, OPENAI_ERRORS))
    except keystore.KeystoreError as exc:
        mapped = from_keystore(exc)
        if mapped.status == 401:
            log.warning("authentication failed: %s", exc)  # the specific reason goes only to the log
        return render(mapped, request.get(ERROR_SHAPE, OPENAI_ERRORS))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return render(_from_http(exc), request.get(ERROR_SHAPE, OPENAI_ERRORS))
    except ConnectionResetError:
        # The client left before its answer could be written (e.g. while response headers were being
        # sent): nobody to answer, not a server error. Handle it like a disconnect-cancelled handler.
        log.info("client went away before the response was written")
        raise asyncio.CancelledError from None
    except Exception:  # the one place that turns surprises into a generic 500
        log.exception("unhandled error")
        return render(ProxyError(f"Internal error (request id {REQUEST_ID.get()})."),
                      request.get(ERROR_SHAPE, OPENAI_ERRORS))
