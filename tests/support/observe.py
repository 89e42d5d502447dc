"""Watching what really reached Postgres and Redis: asyncpg's query logger, Redis MONITOR."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Self

from redis.asyncio import Redis


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

    async def __aenter__(self) -> Self:
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


