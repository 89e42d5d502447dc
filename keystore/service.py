"""The `KeyStore` facade: the one object the proxy talks to, for requests and for administration."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis

from . import keygen
from .cache import LocalCache, RedisCache
from .clock import Clock
from .errors import InvalidInput, NotFound, StorageUnavailable
from .hashing import Hasher
from .limits import NO_LIMITS, limits_from
from .models import UNSET, Actor, ApiKey, AuditEvent, IssuedKey, KeyPage, Propagation, StoredKey
from .pg import Database, decode_cursor, encode_cursor
from .revocation import RevocationBus
from .settings import KeystoreSettings
from .verify import Authenticator, AuthStats, Hooks

log = logging.getLogger(__name__)

STATUSES = ("active", "expired", "revoked")
MAX_NAME = 200
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


async def migrate(pool: asyncpg.Pool, *, timeout: float = 60.0) -> list[str]:
    """Apply pending schema migrations; idempotent and safe from several instances at once."""
    return await Database(pool, timeout=timeout).migrate()


class KeyStore:
    """Keys in Postgres, cached in Redis and in-process, revoked over Redis pub/sub.

    `start()` runs the background loops (revocation feed, heartbeat, Postgres backstop, last-used
    flush); `close()` stops them and flushes pending last-used times.
    """

    def __init__(self, pool: asyncpg.Pool, redis: Redis, settings: KeystoreSettings, *,
                 pubsub_redis: Redis | None = None, clock: Clock | None = None,
                 hooks: Hooks | None = None, instance_id: str | None = None, db_timeout: float = 5.0) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        timer = self.clock.time
        self.db = Database(pool, timeout=db_timeout)
        self.local = LocalCache(
            size=settings.cache_size,
            lifetime=max(settings.cache_keep_seconds, settings.cache_ttl_seconds, settings.pg_down_grace_seconds),
            negative_size=settings.negative_cache_size, negative_ttl=settings.negative_ttl_seconds,
            version_memory=2 * settings.fill_max_age_seconds + settings.cache_ttl_seconds, timer=timer,
        )
        self.records = RedisCache(redis, namespace=settings.namespace, ttl=settings.redis_ttl_seconds,
                                  retry_after=settings.redis_retry_after_seconds, timer=timer)
        self.hasher = Hasher(settings)
        self.bus = RevocationBus(redis, pubsub_redis or redis, self.db, self.local, self.records, settings,
                                 instance_id=instance_id or uuid.uuid4().hex[:12], timer=timer)
        self._auth = Authenticator(self.db, self.local, self.records, self.hasher, self.bus, settings,
                                   timer=timer, hooks=hooks or Hooks())
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        loops: list[Coroutine[Any, Any, None]] = [
            self.bus.follow(), self.bus.heartbeat(), self.bus.poll(), self._flush_last_used_loop()]
        self._tasks = [asyncio.create_task(c) for c in loops]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A cancellation that lands inside a Redis call can come back out as a RedisError, which
            # the loop's own except clause swallows before sleeping again: cancel until it really ends.
            while not task.done():
                await asyncio.wait({task}, timeout=0.5)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.bus.withdraw()
        with contextlib.suppress(Exception):
            await self.flush_last_used()
        self.hasher.close()

    @property
    def feed_up(self) -> bool:
        return self.bus.up

    @property
    def stats(self) -> AuthStats:
        return self._auth.stats

    async def postgres_ok(self) -> bool:
        try:
            await self.db.ping()
        except StorageUnavailable:
            return False
        return True

    async def redis_ok(self) -> bool:
        return await self.records.ping()

    async def migrate(self) -> list[str]:
        return await self.db.migrate()

    # -- the request path -------------------------------------------------------------------------

    async def authenticate(self, presented: str, *, client: str = "") -> ApiKey:
        """Check a presented key. `client` (e.g. the caller's address) scopes the failure limit, so a
        flood of wrong secrets from one client does not lock the key's rightful holder out.

        Raises MalformedKey, UnknownKey, RevokedKey, ExpiredKey, RateLimited or StorageUnavailable
        (never answers "good" for a key it could not check)."""
        return await self._auth.authenticate(presented, client)

    async def flush_last_used(self) -> int:
        """Write the batch of last-used times gathered since the previous flush: one statement."""
        used, self._auth.last_used = self._auth.last_used, {}
        if not used:
            return 0
        try:
            await self.db.record_last_used([(k, self._dt(t)) for k, t in used.items()])
        except Exception:
            for k, t in used.items():  # keep them for the next attempt, newest wins
                self._auth.last_used[k] = max(t, self._auth.last_used.get(k, 0.0))
            raise
        return len(used)

    async def _flush_last_used_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.last_used_flush_seconds)
            try:
                await self.flush_last_used()
            except Exception as exc:  # noqa: BLE001 - a background loop must survive anything
                log.warning("last-used flush failed, will retry: %s", exc)

    # -- administration ---------------------------------------------------------------------------

    def _dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, tz=self.clock.now().tzinfo)

    async def create(self, actor: Actor, *, name: str, account: str = "default",
                     expires_at: datetime | None = None, allowed_models: Sequence[str] = (),
                     allowed_providers: Sequence[str] = (), limits: Mapping[str, Any] | None = None) -> IssuedKey:
        """Mint, hash and store a key. Raises InvalidInput, StorageUnavailable."""
        now = self.clock.now()
        _check_name(name)
        _check_account(account)
        _check_expiry(expires_at, now)
        full, key_id, secret = keygen.mint()
        stored = StoredKey(
            ApiKey(id=key_id, name=name, account=account, hint=keygen.hint(full), created_at=now,
                   expires_at=expires_at, last_used_at=None, revoked_at=None,
                   allowed_models=_names(allowed_models, "allowed_models"),
                   allowed_providers=_names(allowed_providers, "allowed_providers"),
                   rotated_from=None, version=1, limits=None if limits is None else limits_from(limits)),
            secret_hash=await self.hasher.hash(secret),
        )
        await self.db.insert_key(stored, actor, "key.create", _describe(stored.key))
        log.info("key %s created by %s", key_id, actor.name)
        return IssuedKey(key=stored.key, secret=full)

    async def get(self, key_id: str) -> ApiKey:
        """Raises NotFound, StorageUnavailable."""
        stored = await self.db.fetch_key(key_id) if keygen.is_key_id(key_id) else None
        if stored is None:
            raise NotFound(f"no key with id {key_id!r}")
        return stored.key

    async def list_keys(self, *, account: str | None = None, status: str | None = None, limit: int = 100,
                        cursor: str | None = None) -> KeyPage:
        """Newest first. Raises InvalidInput (bad status, limit or cursor), StorageUnavailable."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        page = await self.db.list_keys(now=self.clock.now(), account=account, status=status, limit=limit + 1,
                                       cursor=decode_cursor(cursor) if cursor else None)
        more = len(page) > limit
        data = page[:limit]
        return KeyPage(data=data, next_cursor=encode_cursor(data[-1]) if more else None)

    async def update(self, actor: Actor, key_id: str, *, name: Any = UNSET, expires_at: Any = UNSET,
                     allowed_models: Any = UNSET, allowed_providers: Any = UNSET,
                     limits: Any = UNSET) -> tuple[ApiKey, Propagation]:
        """Change a key; narrowing takes effect everywhere like a revoke. `limits` is a partial object
        merged into the key's (a null clears one limit). Raises InvalidInput, NotFound."""
        changes: dict[str, Any] = {}
        if name is not UNSET:
            _check_name(name)
            changes["name"] = name
        if expires_at is not UNSET:
            _check_expiry(expires_at, self.clock.now())
            changes["expires_at"] = expires_at
        for col, value in (("allowed_models", allowed_models), ("allowed_providers", allowed_providers)):
            if value is not UNSET:
                changes[col] = list(_names(value, col))
        if limits is not UNSET:
            NO_LIMITS.merged(limits)  # checks every value given; the merge itself happens in Postgres
            changes["limits"] = json.dumps(dict(limits))  # the jsonb parameter, as JSON text
        if not changes:
            raise InvalidInput("nothing to update", field=None)
        stored = await self.db.update_key(key_id, changes, self.clock.now(), actor, "key.update",
                                          {k: _jsonable(v) for k, v in changes.items()})
        if stored is None:
            raise NotFound(f"no key with id {key_id!r}")
        return stored.key, await self._propagate(stored)

    async def revoke(self, actor: Actor, key_id: str) -> tuple[ApiKey, Propagation]:
        """Revoke now; idempotent. Returns after the commit, the Redis update and the publish."""
        now = self.clock.now()
        current = await self.get(key_id)
        if current.status(now.timestamp()) == "revoked":
            stored = await self.db.fetch_key(key_id)
        else:
            stored = await self.db.update_key(
                key_id, {"revoked_at": min(current.revoked_at or now, now), "revoked": True}, now, actor, "key.revoke", {})
        if stored is None:
            raise NotFound(f"no key with id {key_id!r}")
        log.info("key %s revoked by %s", key_id, actor.name)
        return stored.key, await self._propagate(stored)

    async def rotate(self, actor: Actor, key_id: str, *, grace_seconds: float = 0) -> tuple[IssuedKey, ApiKey, Propagation]:
        """New key with the old one's name, account, restrictions and lifetime; the old one ends after
        `grace_seconds`. Returns (new, old, propagation). Raises InvalidInput, NotFound."""
        if not 0 <= grace_seconds <= 30 * 86400:
            raise InvalidInput("grace_seconds must be between 0 and 2592000", field="grace_seconds")
        now = self.clock.now()
        if (await self.get(key_id)).status(now.timestamp()) == "revoked":
            raise InvalidInput("a revoked key cannot be rotated", field="id")
        full, new_id, secret = keygen.mint()
        secret_hash = await self.hasher.hash(secret)

        def build(old: StoredKey) -> StoredKey:
            o = old.key
            lifetime = None if o.expires_at is None else o.expires_at - o.created_at
            # Every field not named here (restrictions, and whatever a key gains later) is copied.
            return StoredKey(dataclasses.replace(
                o, id=new_id, hint=keygen.hint(full), created_at=now,
                expires_at=None if lifetime is None else now + lifetime, last_used_at=None, revoked_at=None,
                revoked=False, rotated_from=o.id, version=1), secret_hash)

        result = await self.db.rotate_key(key_id, build, now + timedelta(seconds=grace_seconds), actor,
                                          {"grace_seconds": grace_seconds})
        if result is None:
            raise NotFound(f"no key with id {key_id!r}")
        old, new = result
        log.info("key %s rotated to %s by %s (grace %ss)", key_id, new_id, actor.name, grace_seconds)
        return IssuedKey(new.key, full), old.key, await self._propagate(old)

    async def audit(self, *, key_id: str | None = None, limit: int = 100) -> list[AuditEvent]:
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        return await self.db.list_audit(key_id=key_id, limit=limit)

    async def _propagate(self, stored: StoredKey) -> Propagation:
        """Committed already; now update Redis, evict here, then publish to every instance."""
        await self.records.put(stored)
        self.local.evict(stored.key.id, stored.key.version)
        return await self.bus.publish(stored.key.id, stored.key.version)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name must be a non-empty string", field="name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name must be at most {MAX_NAME} characters", field="name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidInput("name must not contain control characters", field="name")


def _check_account(account: Any) -> None:
    if not isinstance(account, str) or _ACCOUNT_RE.fullmatch(account) is None:
        raise InvalidInput("account must be 1-128 characters of letters, digits and ._:@-", field="account")


def _check_expiry(expires_at: Any, now: datetime) -> None:
    if expires_at is None:
        return
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        raise InvalidInput("expires_at must be an RFC 3339 time with a timezone", field="expires_at")
    if expires_at <= now:
        raise InvalidInput("expires_at must be in the future", field="expires_at")


def _names(values: Any, field: str) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in values):
        raise InvalidInput(f"{field} must be a list of non-empty strings", field=field)
    return tuple(dict.fromkeys(values))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _describe(key: ApiKey) -> dict[str, Any]:
    return {"name": key.name, "account": key.account, "expires_at": _jsonable(key.expires_at),
            "allowed_models": list(key.allowed_models), "allowed_providers": list(key.allowed_providers),
            "limits": None if key.limits is None else key.limits.to_json()}
