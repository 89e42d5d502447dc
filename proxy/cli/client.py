"""A small synchronous client of the admin REST API for the `tokenhub keys` commands (stdlib only)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import HTTPRedirectHandler, ProxyHandler, Request, build_opener

DEFAULT_URL = "http://127.0.0.1:8081"


class AdminError(Exception):
    """The admin endpoint answered with an error (its message, HTTP status, and the field at fault)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def __str__(self) -> str:
        where = f" (field: {self.param})" if self.param else ""
        return f"{self.message}{where} [HTTP {self.status}{', ' + self.code if self.code else ''}]"


class Unreachable(Exception):
    """No answer at all: nothing listening, a timeout, or a connection cut."""


def key_path(key_id: str, action: str = "") -> str:
    return f"/admin/keys/{quote(key_id, safe='')}" + (f"/{action}" if action else "")


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"TOKENHUB_ADMIN_URL must be an http(s) URL like {DEFAULT_URL}, got {url!r}")
    return url.rstrip("/")


def _error_from(exc: HTTPError) -> AdminError:
    raw = exc.read()
    try:
        err = json.loads(raw)["error"]
        return AdminError(exc.code, str(err["message"]), param=err.get("param"), code=err.get("code"))
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace").strip()[:200] or exc.reason
        return AdminError(exc.code, f"unexpected answer: {text}")


class _NoRedirects(HTTPRedirectHandler):
    """A redirect is an error, never followed: following it would send the admin token to wherever
    the answer points (another host, or plain http)."""

    def redirect_request(self, req: Request, fp: IO[bytes], code: int, msg: str, headers: Message,
                         newurl: str) -> Request | None:
        fp.close()
        raise AdminError(code, f"the admin endpoint answered with a redirect to {newurl[:200]}; it is not "
                               "followed (the admin token must not be sent elsewhere): set TOKENHUB_ADMIN_URL "
                               "to the admin listener's own address", code="redirect_refused")


@dataclass(frozen=True, slots=True)
class AdminClient:
    base_url: str
    token: str = field(repr=False)
    timeout: float = 60.0  # a revoke waits for instances to confirm; well under this

    def call(self, method: str, path: str, *, body: Mapping[str, Any] | None = None,
             query: Mapping[str, Any] | None = None) -> Any:
        """One call; the decoded JSON answer. Raises AdminError (an error answer) or Unreachable."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base_url + path + (f"?{urlencode(params)}" if params else "")
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        # No proxy from the environment: the admin listener is on loopback or a private network.
        opener = build_opener(ProxyHandler({}), _NoRedirects())
        try:
            with opener.open(Request(url, data=data, method=method, headers=headers), timeout=self.timeout) as resp:
                raw = resp.read()
        except HTTPError as exc:
            raise _error_from(exc) from None
        except URLError as exc:
            raise Unreachable(f"cannot reach the admin endpoint at {self.base_url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"no answer from the admin endpoint at {self.base_url}: {exc}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise Unreachable(f"the admin endpoint at {self.base_url} did not answer JSON") from None
