"""The creators of stored responses (OpenAI Responses API), kept in Postgres: the only authority over
who may read a stored response back (Redis is never asked)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from .errors import StorageUnavailable

_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.TooManyConnectionsError)


@dataclass(frozen=True, slots=True)
class ResponseOwner:
    response_id: str
    key_id: str
    provider: str
    model: str  # "provider/model"


class ResponseOwners:
    """`remember` the key that created a response; `find` it again. Each call bounded by `timeout`."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 2.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def remember(self, owner: ResponseOwner) -> bool:
        """Record `owner`; False when the id was already recorded (the first record stands).
        Raises StorageUnavailable when Postgres cannot be reached."""
        status = await self._run(
            "INSERT INTO response_owners (response_id, key_id, provider, model) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (response_id) DO NOTHING",
            owner.response_id, owner.key_id, owner.provider, owner.model)
        return bool(status) and str(status).endswith(" 1")

    async def find(self, response_id: str) -> ResponseOwner | None:
        """The recorded creator of `response_id`, or None. Raises StorageUnavailable."""
        row = await self._run("SELECT response_id, key_id, provider, model FROM response_owners"
                              " WHERE response_id = $1", response_id, fetch=True)
        if not isinstance(row, asyncpg.Record):
            return None
        return ResponseOwner(row["response_id"], row["key_id"], row["provider"], row["model"])

    async def forget_older_than(self, days: float, *, batch: int = 10_000) -> int:
        """Delete up to `batch` records older than `days` (Postgres time); how many went.
        Raises StorageUnavailable."""
        status = await self._run(
            "DELETE FROM response_owners WHERE ctid = ANY (ARRAY(SELECT ctid FROM response_owners"
            " WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))", days * 86400.0, batch)
        return int(str(status).rsplit(" ", 1)[-1])

    async def _run(self, sql: str, *args: object, fetch: bool = False) -> object:
        try:
            async with asyncio.timeout(self._timeout):
                async with self._pool.acquire() as conn:
                    if fetch:
                        return await conn.fetchrow(sql, *args)
                    return await conn.execute(sql, *args)
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"postgres unavailable: {exc.__class__.__name__}") from exc
