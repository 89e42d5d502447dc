"""Test helpers that stand between our code and the real services without replacing them."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from keystore import Clock


class FakeClock(Clock):
    """A clock that starts at real time and moves only when told."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))  # whole seconds: Postgres keeps microseconds, floats do not

    def time(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class QueryCounter:
    """Counts every statement asyncpg really sent, via its query logger."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, record: Any) -> None:
        self.queries.append(record.query)

    @property
    def count(self) -> int:
        return len(self.queries)


class RedisMonitor:
    """Records the commands the Redis server executed on one database (MONITOR), fenced by sentinels."""

    def __init__(self, url: str, db: int) -> None:
        self._url, self._db = url, db
        self._seen: list[tuple[str, str]] = []  # (client addr, command)
        self._task: asyncio.Task[None] | None = None
        self._client = Redis.from_url(url)

    async def __aenter__(self) -> "RedisMonitor":
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready))
        await ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._client.aclose()

    async def _run(self, ready: asyncio.Event) -> None:
        monitor_client = Redis.from_url(self._url)
        try:
            async with monitor_client.monitor() as m:
                ready.set()
                while True:
                    cmd = await m.next_command()
                    if int(cmd["db"]) == self._db:
                        self._seen.append((f'{cmd["client_address"]}:{cmd["client_port"]}', cmd["command"]))
        finally:
            await monitor_client.aclose()

    async def _fence(self) -> int:
        token = f"fence-{uuid.uuid4().hex}"
        await self._client.echo(token)
        while not any(token in c for _, c in self._seen):
            await asyncio.sleep(0.005)
        return next(i for i, (_, c) in enumerate(self._seen) if token in c)

    async def _addrs(self, name_prefix: str) -> set[str]:
        return {c["addr"] for c in await self._client.client_list() if c.get("name", "").startswith(name_prefix)}

    async def commands_during(self, action: Callable[[], Awaitable[Any]], name_prefix: str) -> list[str]:
        """Commands run on connections named `name_prefix…` while `action` ran (other test runs may share
        this database, so commands are attributed by connection)."""
        ours = await self._addrs(name_prefix)
        start = await self._fence()
        await action()
        end = await self._fence()
        ours |= await self._addrs(name_prefix)
        return [c for addr, c in self._seen[start + 1:end] if addr in ours]


class TcpGate:
    """A real TCP forwarder in front of a service, which a test can cut and restore (a network fault)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.open = True
        self.refused = 0  # connections turned away while cut

    async def start(self) -> "TcpGate":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            self.refused += 1
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._links.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(writer)
            writer.close()

    def cut(self) -> None:
        """Drop every live connection and refuse new ones."""
        self.open = False
        for w in list(self._links):
            w.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Wait until `check()` is truthy (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(*stores: Any) -> AsyncIterator[None]:
    for s in stores:
        await s.start()
    try:
        yield
    finally:
        for s in stores:
            await s.close()
