"""`tokenhub serve`: run the proxy and admin listeners under aiohttp's production runner."""

from __future__ import annotations

import asyncio
import logging
import signal

import aiohttp
from aiohttp import http_parser, web

from .app import create_admin_app, create_app
from .config import Config, split_listen
from .state import DRAINING

log = logging.getLogger(__name__)
MIN_AIOHTTP = (3, 14, 4)


class StartupError(Exception):
    """A reason the server refuses to start; printed without a traceback."""


def check_runtime(config: Config) -> None:
    """Refuse to run on an aiohttp with known smuggling bugs, or with the admin listener open."""
    version = tuple(int(p) for p in aiohttp.__version__.split(".")[:3] if p.isdigit())
    problems = []
    if version < MIN_AIOHTTP:
        problems.append(f"aiohttp {aiohttp.__version__} is too old; {'.'.join(map(str, MIN_AIOHTTP))} or newer is required")
    if not http_parser.HttpRequestParser.__module__.endswith("_http_parser"):
        problems.append("aiohttp is using its pure-Python HTTP parser (AIOHTTP_NO_EXTENSIONS set, or no C "
                        "extension for this platform); it has had request-smuggling bugs, so tokenhub will not "
                        "start on it")
    if not config.admin.tokens:
        problems.append("no admin token: set TOKENHUB_ADMIN_TOKEN (at least 16 characters); the admin listener "
                        "will not run open")
    if problems:
        raise StartupError("\n".join(problems))


def make_runner(app: web.Application, config: Config) -> web.AppRunner:
    # handler_cancellation=True: a client that disconnects cancels its handler, and so the upstream
    # request (aiohttp's default under AppRunner is to let it run to completion for nobody).
    return web.AppRunner(app, handler_cancellation=True, access_log=None,
                         shutdown_timeout=config.server.shutdown_grace_seconds,
                         keepalive_timeout=config.server.keepalive_timeout_seconds)


async def run_instance(config: Config, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then drain: readiness false, no new requests, in-flight streams
    get up to `shutdown_grace_seconds` to finish."""
    proxy_app = create_app(config)
    admin_app = create_admin_app(config, proxy_app)
    proxy_runner, admin_runner = make_runner(proxy_app, config), make_runner(admin_app, config)
    await proxy_runner.setup()
    try:
        await admin_runner.setup()
        host, port = split_listen(config.server.listen)
        await web.TCPSite(proxy_runner, host, port, reuse_port=reuse_port or None).start()
        ahost, aport = split_listen(config.admin.listen)
        await web.TCPSite(admin_runner, ahost, aport, reuse_port=reuse_port or None).start()
        log.info("serving the proxy on %s and the admin listener on %s", config.server.listen, config.admin.listen)
        await _wait_for_signal()
        log.info("shutting down: draining in-flight requests (up to %.0fs)", config.server.shutdown_grace_seconds)
        proxy_app[DRAINING][0] = True
    finally:
        await admin_runner.cleanup()
        await proxy_runner.cleanup()
    log.info("stopped")


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
