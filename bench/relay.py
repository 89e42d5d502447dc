"""The in-run baseline: a bare aiohttp relay, "what aiohttp can do on this core".

Authentication is one dict lookup of the `Authorization` header and nothing more: no keystore, no
metrics, no logging, no model checks. It forwards the body to the upstream with one shared
`ClientSession` and relays the answer (read whole when the upstream sent a Content-Length, streamed
chunk by chunk otherwise), under the same production runner settings as `tokenhub serve`.

Run: `python -m bench.relay --upstream http://127.0.0.1:P --key th-... [--key ...] --port 0`;
it prints `PORT <n>`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

KEYS = web.AppKey("keys", dict)
UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)
_UNAUTHORIZED = (b'{"error":{"message":"bad key","type":"authentication_error","param":null,'
                 b'"code":"invalid_api_key"}}')


async def relay(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Authorization") not in request.app[KEYS]:
        return web.Response(status=401, body=_UNAUTHORIZED, content_type="application/json")
    body = await request.read()
    headers = {"Content-Type": request.headers.get("Content-Type", "application/json"),
               "Authorization": "Bearer provider-secret"}
    url = request.app[UPSTREAM] + request.rel_url.path_qs
    async with request.app[SESSION].request(request.method, url, data=body, headers=headers) as upstream:
        kept = {"Content-Type": upstream.headers.get("Content-Type", "application/json")}
        if upstream.content_length is not None:
            return web.Response(status=upstream.status, body=await upstream.read(), headers=kept)
        response = web.StreamResponse(status=upstream.status, headers=kept)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=1000)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    app[SESSION] = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                         cookie_jar=aiohttp.DummyCookieJar())  # as the proxy
    yield
    await app[SESSION].close()


def create_relay_app(upstream: str, keys: list[str]) -> web.Application:
    app = web.Application()
    app[KEYS] = {f"Bearer {k}": k for k in keys}
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


async def _main(args: argparse.Namespace) -> None:
    app = create_relay_app(args.upstream, args.key)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=4096)
    await site.start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="base URL of the fake provider (no /v1)")
    parser.add_argument("--key", action="append", default=[], help="a key the relay accepts (repeatable)")
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
