"""Every SQL statement of the keystore. Takes an `asyncpg.Pool`; turns asyncpg failures into keystore errors."""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib.resources
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg

from .errors import Conflict, DuplicateKey, InvalidInput, StorageUnavailable
from .models import Actor, ApiKey, AuditEvent, StoredKey
from .record import COLUMNS, INSERT_COLUMNS, from_row, insert_values

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Failures that mean "Postgres cannot answer right now", as opposed to a bug in a statement.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_MIGRATION_LOCK = 0x746F6B656E687562  # "tokenhub": one advisory lock id for all instances
_FLEET_SECRET = "record_mac"
# Columns an update does not simply overwrite. `limits` takes a partial object merged into the stored
# one in the same statement (a null clears that limit; nothing left → NULL), so two concurrent PATCHes
# of different limits cannot undo each other.
_SET = {"limits": "limits = NULLIF(jsonb_strip_nulls(COALESCE(limits, '{{}}'::jsonb) || ${i}::jsonb), '{{}}'::jsonb)"}
_INSERT_KEY = (f"INSERT INTO api_keys ({', '.join(INSERT_COLUMNS)})"
               f" VALUES ({', '.join(f'${i}' for i in range(1, len(INSERT_COLUMNS) + 1))})")


def _translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except asyncpg.UniqueViolationError as exc:
            raise DuplicateKey("key id already exists") from exc
        except asyncpg.DataError as exc:
            raise InvalidInput(f"value rejected by the database: {exc.__class__.__name__}") from exc
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"postgres unavailable: {exc.__class__.__name__}") from exc

    return wrapper


def encode_cursor(key: ApiKey) -> str:
    raw = f"{key.created_at.isoformat()}|{key.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key_id = raw.split("|", 1)
        return datetime.fromisoformat(at), key_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this server issued", field="cursor") from exc


_REVOKED_SQL = "(revoked OR (revoked_at IS NOT NULL AND revoked_at <= clock_timestamp()))"
_STATUS_SQL = {  # judged on Postgres' clock, never on an instance's
    None: "true",
    "revoked": _REVOKED_SQL,
    "expired": f"(NOT {_REVOKED_SQL} AND expires_at IS NOT NULL AND expires_at <= clock_timestamp())",
    "active": f"(NOT {_REVOKED_SQL} AND (expires_at IS NULL OR expires_at > clock_timestamp()))",
}


class Database:
    """The keystore's Postgres statements, each bounded by `timeout` (pool acquire and query)."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = timeout

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        async with asyncio.timeout(self._timeout):
            conn = await self._pool.acquire()
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    @_translated
    async def migrate(self) -> list[str]:
        """Apply pending migrations under an advisory lock; safe to run from many instances at once."""
        files = sorted(
            (f for f in importlib.resources.files("keystore.migrations").iterdir() if f.name.endswith(".sql")),
            key=lambda f: f.name,
        )
        applied: list[str] = []
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS tokenhub_migrations"
                " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM tokenhub_migrations")}
            for f in files:
                if f.name not in done:
                    await conn.execute(f.read_text())
                    await conn.execute("INSERT INTO tokenhub_migrations (name) VALUES ($1)", f.name)
                    applied.append(f.name)
            # The fleet secret: made once, here, so it lives only in Postgres and in instances' memory.
            await conn.execute("INSERT INTO tokenhub_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                               _FLEET_SECRET, os.urandom(32))
        return applied

    @_translated
    async def fleet_secret(self) -> bytes:
        """The MAC key for what instances write to Redis. Raises StorageUnavailable (also when missing)."""
        async with self._conn() as conn:
            value = await conn.fetchval("SELECT value FROM tokenhub_secrets WHERE name = $1", _FLEET_SECRET,
                                        timeout=self._timeout)
        if value is None:
            raise StorageUnavailable("no fleet secret in Postgres: run `tokenhub migrate`")
        return bytes(value)

    @_translated
    async def server_time(self) -> float:
        """Postgres' clock, epoch seconds."""
        async with self._conn() as conn:
            return float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())", timeout=self._timeout))

    @_translated
    async def fetch_key(self, key_id: str) -> StoredKey | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM api_keys WHERE id = $1", key_id, timeout=self._timeout
            )
        return None if row is None else from_row(row)

    @_translated
    async def insert_key(self, stored: StoredKey, actor: Actor, action: str, details: dict[str, Any]) -> None:
        k = stored.key
        async with self._conn() as conn, conn.transaction():
            await self._insert(conn, stored)
            await self._audit(conn, k.created_at, actor, action, k.id, details)

    @_translated
    async def update_key(
        self, key_id: str, changes: dict[str, Any], now: datetime, actor: Actor, action: str,
        details: dict[str, Any],
    ) -> StoredKey | None:
        """Apply `changes` (column → value), bump the version, log the change and audit it atomically."""
        sets = ", ".join(_SET.get(col, "{col} = ${i}").format(col=col, i=i) for i, col in enumerate(changes, start=2))
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE api_keys SET {sets}, version = version + 1 WHERE id = $1 RETURNING {COLUMNS}",
                key_id, *changes.values(), timeout=self._timeout,
            )
            if row is None:
                return None
            await conn.execute(
                "INSERT INTO key_changes (key_id, version) VALUES ($1, $2)", key_id, row["version"]
            )
            await self._audit(conn, now, actor, action, key_id, details)
        return from_row(row)

    @_translated
    async def audit_only(self, now: datetime, actor: Actor, action: str, key_id: str,
                         details: dict[str, Any]) -> None:
        async with self._conn() as conn:
            await self._audit(conn, now, actor, action, key_id, details)

    async def _insert(self, conn: asyncpg.Connection, stored: StoredKey) -> None:
        """The one INSERT of a key: every column of the record mapping (keystore/record.py)."""
        await conn.execute(_INSERT_KEY, *insert_values(stored), timeout=self._timeout)

    async def _audit(self, conn: asyncpg.Connection, now: datetime, actor: Actor, action: str,
                     key_id: str | None, details: dict[str, Any]) -> None:
        await conn.execute(
            "INSERT INTO audit_log (at, actor, action, key_id, request_id, details)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            now, actor.name, action, key_id, actor.request_id, json.dumps(details), timeout=self._timeout,
        )

    @_translated
    async def list_keys(
        self, *, account: str | None, status: str | None, limit: int, cursor: tuple[datetime, str] | None,
    ) -> list[ApiKey]:
        where = [_STATUS_SQL[status]]
        args: list[Any] = []
        if account is not None:
            args.append(account)
            where.append(f"account = ${len(args)}")
        if cursor is not None:
            args.extend(cursor)
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        sql = (f"SELECT {COLUMNS} FROM api_keys WHERE {' AND '.join(where)}"
               f" ORDER BY created_at DESC, id DESC LIMIT ${len(args)}")
        async with self._conn() as conn:
            rows = await conn.fetch(sql, *args, timeout=self._timeout)
        return [from_row(r).key for r in rows]

    @_translated
    async def list_audit(self, *, key_id: str | None, limit: int) -> list[AuditEvent]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id, at, actor, action, key_id, request_id, details::text AS details FROM audit_log"
                " WHERE ($1::text IS NULL OR key_id = $1) ORDER BY id DESC LIMIT $2",
                key_id, limit, timeout=self._timeout,
            )
        return [AuditEvent(id=r["id"], at=r["at"], actor=r["actor"], action=r["action"], key_id=r["key_id"],
                           request_id=r["request_id"], details=json.loads(r["details"])) for r in rows]

    @_translated
    async def record_last_used(self, used: Sequence[tuple[str, datetime]]) -> None:
        """One statement for a whole batch; never moves last_used_at backwards."""
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE api_keys AS k SET last_used_at = GREATEST(k.last_used_at, u.at)"
                " FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at) WHERE k.id = u.id",
                [u[0] for u in used], [u[1] for u in used], timeout=self._timeout,
            )

    @_translated
    async def recent_changes(self, window_seconds: float) -> list[tuple[str, int]]:
        """(key id, version) of every change committed in the last `window_seconds` (server time)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT key_id, version FROM key_changes"
                " WHERE at > clock_timestamp() - make_interval(secs => $1) ORDER BY seq",
                window_seconds, timeout=self._timeout,
            )
        return [(r["key_id"], r["version"]) for r in rows]

    @_translated
    async def prune_changes(self, keep_seconds: float) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "DELETE FROM key_changes WHERE at < clock_timestamp() - make_interval(secs => $1)",
                keep_seconds, timeout=self._timeout,
            )

    @_translated
    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1", timeout=self._timeout)

    @_translated
    async def revoke_key(self, key_id: str, actor: Actor) -> StoredKey | None:
        """Revoke now, as a state in force from this commit; `revoked_at` is Postgres' clock.

        Idempotent: an already revoked key is returned as it is (no new version, no audit row).
        The row lock makes a concurrent rotate of the same key wait for this commit (then 409).
        """
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE api_keys SET revoked = true, revoked_at = LEAST(COALESCE(revoked_at, 'infinity'),"
                f" clock_timestamp()), version = version + 1 WHERE id = $1 AND NOT revoked RETURNING {COLUMNS}",
                key_id, timeout=self._timeout,
            )
            if row is None:
                row = await conn.fetchrow(f"SELECT {COLUMNS} FROM api_keys WHERE id = $1", key_id,
                                          timeout=self._timeout)
                return None if row is None else from_row(row)
            stored = from_row(row)
            await conn.execute("INSERT INTO key_changes (key_id, version) VALUES ($1, $2)", key_id, row["version"])
            await self._audit(conn, datetime.fromtimestamp(stored.read_at, UTC), actor, "key.revoke", key_id, {})
        return stored

    @_translated
    async def rotate_key(
        self, old_id: str, build_new: Callable[[StoredKey], StoredKey], grace_seconds: float,
        actor: Actor, details: dict[str, Any],
    ) -> tuple[StoredKey, StoredKey] | None:
        """Insert the key `build_new(old)` and schedule the old key's end, linked, in one transaction.

        The old row is locked first, so a concurrent update or revoke cannot slip between reading its
        attributes and copying them; a key that is revoked (or whose end has come) when the lock is
        granted raises Conflict, so a revoked key never gets an active successor. `build_new` gets the
        old record with `read_at` = Postgres' time. The old key's `revoked_at` only ever moves earlier:
        rotating twice cannot extend a grace period. Returns (old, new) as committed, or None if the
        old key does not exist.
        """
        async with self._conn() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE", old_id, timeout=self._timeout
            )
            if row is None:
                return None
            current = from_row(row)
            if current.key.status(current.read_at) == "revoked":
                raise Conflict(f"key {old_id} is revoked and cannot be rotated")
            new = build_new(current)
            k = new.key
            await self._insert(conn, new)
            old = await conn.fetchrow(
                # No grace: the old key ends at this commit, as a revoke does (a state, not a time).
                "UPDATE api_keys SET revoked = revoked OR $2 = 0, revoked_at = LEAST(COALESCE(revoked_at,"
                " 'infinity'), clock_timestamp() + make_interval(secs => $2)),"
                f" version = version + 1 WHERE id = $1 RETURNING {COLUMNS}",
                old_id, float(grace_seconds), timeout=self._timeout,
            )
            await conn.execute("INSERT INTO key_changes (key_id, version) VALUES ($1, $2)", old_id, old["version"])
            await self._audit(conn, k.created_at, actor, "key.rotate", old_id, details | {"new_key_id": k.id})
            await self._audit(conn, k.created_at, actor, "key.create", k.id, {"rotated_from": old_id})
        return from_row(old), new
