"""`tokenhub serve`: one instance (the proxy and admin listeners in this process, under aiohttp's
production runner), its graceful drain on SIGTERM/SIGINT, and the access log.

Several workers are run by `supervisor.py`, each one an instance of this module bound with SO_REUSEPORT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
from aiohttp import http_parser, web

from proxy.app import create_admin_app, create_app
from proxy.config import Config, split_listen
from proxy.runtime.access import AccessSink, access_logger_class
from proxy.runtime.protocol import GuardedAppRunner
from proxy.state import LIFECYCLE, METRICS, REQUEST_LOG

log = logging.getLogger(__name__)
access_log = logging.getLogger("tokenhub.access")
MIN_AIOHTTP = (3, 14, 4)
WORKER_HEADER = "x-tokenhub-worker"
_PARENT_CHECK_SECONDS = 1.0


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


def make_runner(app: web.Application, config: Config, sink: AccessSink) -> GuardedAppRunner:
    # handler_cancellation=True: a client that disconnects cancels its handler, and so the upstream
    # request (aiohttp's default under AppRunner is to let it run to completion for nobody).
    # GuardedAppRunner: a deadline for request heads, parser errors answered without echoing them.
    return GuardedAppRunner(app, head_timeout=config.server.header_timeout_seconds,
                            handler_cancellation=True, access_log_class=access_logger_class(sink),
                            shutdown_timeout=config.server.shutdown_grace_seconds,
                            keepalive_timeout=config.server.keepalive_timeout_seconds)


def _worker_header(worker: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def add(request: web.Request, response: web.StreamResponse) -> None:
        response.headers[WORKER_HEADER] = worker

    return add


class Instance:
    """The proxy and admin listeners of one process. `start()`, then `drain()` exactly once."""

    def __init__(self, config: Config, *, worker: int = 0, reuse_port: bool = False) -> None:
        self.config, self.worker, self._reuse_port = config, worker, reuse_port
        self.proxy_app = create_app(config)
        self.admin_app = create_admin_app(config, self.proxy_app)
        for app in (self.proxy_app, self.admin_app):
            # which worker answered: shows SO_REUSEPORT spreading work
            app.on_response_prepare.append(_worker_header(str(worker)))
        # One INFO line per request on `tokenhub.access` (access.py), batched.
        self.access = AccessSink(sys.stderr, json=config.logging.format == "json",
                                 enabled=access_log.isEnabledFor(logging.INFO))
        self.proxy_app[REQUEST_LOG].sink = self.access
        self._proxy = make_runner(self.proxy_app, config, self.access)
        self._admin = make_runner(self.admin_app, config, self.access)

    async def start(self) -> None:
        """Start both listeners; on failure, whatever started is cleaned up before raising."""
        await self._proxy.setup()
        started = [self._proxy]
        try:
            await self._admin.setup()
            started.insert(0, self._admin)
            # Admin first: once the proxy port answers, the whole instance is up.
            await self._bind(self._admin, self.config.admin.listen)
            await self._bind(self._proxy, self.config.server.listen)
        except BaseException:
            for runner in started:
                await runner.cleanup()
            raise
        log.info("worker %d serving the proxy on %s and the admin listener on %s", self.worker,
                 self.config.server.listen, self.config.admin.listen)

    async def _bind(self, runner: web.AppRunner, listen: str) -> None:
        host, port = split_listen(listen)
        try:
            await web.TCPSite(runner, host, port, reuse_port=self._reuse_port or None).start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {listen}: {exc.strerror or exc}") from None

    @property
    def ports(self) -> tuple[int, int]:
        return int(self._proxy.addresses[0][1]), int(self._admin.addresses[0][1])

    async def drain(self) -> None:
        """Readiness false, listeners closed (new connections refused; new requests on open connections
        get 503 from the auth middleware and the connection closes), in-flight requests get
        `shutdown_grace_seconds` in all, then both apps are cleaned up (admin first: it borrows the
        proxy app's keystore)."""
        grace = self.config.server.shutdown_grace_seconds
        log.info("worker %d draining: in-flight requests have up to %.0fs", self.worker, grace)
        self.proxy_app[LIFECYCLE].drain()
        runners = (self._admin, self._proxy)
        for runner in runners:
            for site in list(runner.sites):
                await site.stop()
        await asyncio.sleep(0)  # let connections accepted just before the close start their request
        servers = [r.server for r in runners if r.server is not None]
        for server in servers:
            server.pre_shutdown()  # idle keep-alive connections close; busy ones close after their request
        await asyncio.gather(*(server.shutdown(grace) for server in servers))
        for runner in runners:
            await runner.cleanup()
        self.access.flush()
        log.info("worker %d stopped", self.worker)


async def run_instance(config: Config, *, worker: int = 0, reuse_port: bool = False,
                       parent_pid: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or, for a worker, until its supervisor is gone), then drain."""
    instance = Instance(config, worker=worker, reuse_port=reuse_port)
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await instance.start()
        tasks = [asyncio.create_task(instance.proxy_app[METRICS].sync_forever())]
        if parent_pid is not None:
            tasks.append(asyncio.create_task(_watch_parent(parent_pid, stop)))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await instance.drain()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`. Later ones are ignored while draining: under a supervisor, a
    terminal's Ctrl-C reaches the worker twice (from the terminal and forwarded), and the second must
    not cut the streams the first one lets finish."""
    loop = asyncio.get_running_loop()

    def received(sig: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s received again; still draining", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, received, sig)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """A worker whose supervisor died (SIGKILL, OOM) drains instead of serving on as an orphan."""
    while os.getppid() == parent_pid:
        await asyncio.sleep(_PARENT_CHECK_SECONDS)
    log.error("supervisor (pid %d) is gone; draining", parent_pid)
    stop.set()
