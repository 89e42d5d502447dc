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
from datetime import UTC, datetime
from typing import Any

import asyncpg

from . import keygen
from .cache import LocalCache, RedisCache
from .clients import PubSubSource, RedisClient
from .clock import Clock, ClockSync
from .errors import Conflict, InvalidInput, NotFound, StorageUnavailable
from .hashing import Hasher
from .limits import NO_LIMITS, limits_from
from .models import (
    UNSET,
    Actor,
    ApiKey,
    AuditEvent,
    IssuedKey,
    KeyPage,
    KeystoreSnapshot,
    Propagation,
    StoredKey,
)
from .pg import Database, decode_cursor, encode_cursor
from .revocation import RevocationBus
from .seal import Seal
from .settings import KeystoreSettings
from .verify import Authenticator, Hooks

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

    def __init__(self, pool: asyncpg.Pool, redis: RedisClient, settings: KeystoreSettings, *,
                 pubsub_redis: PubSubSource | None = None, clock: Clock | None = None,
                 hooks: Hooks | None = None, instance_id: str | None = None, db_timeout: float = 5.0) -> None:
        self.settings = settings
        local_clock = clock or Clock()
        timer = local_clock.time  # local things: cache lifetimes and windows
        self._clock = ClockSync(local_clock, warn_offset=settings.clock_warn_offset_seconds,
                                max_offset=settings.clock_max_offset_seconds)
        self._seal = Seal()
        self._hooks = hooks or Hooks()
        self._db = Database(pool, timeout=db_timeout)
        self._local = LocalCache(
            size=settings.cache_size,
            lifetime=max(settings.cache_keep_seconds, settings.cache_ttl_seconds, settings.pg_down_grace_seconds),
            negative_size=settings.negative_cache_size, negative_ttl=settings.negative_ttl_seconds,
            # A floor must outlive every Redis record older than it (records live `redis_ttl_seconds`
            # from their Postgres read), plus the slack of a slow fill and a trust window.
            version_memory=settings.redis_ttl_seconds + 2 * settings.fill_max_age_seconds
            + settings.cache_ttl_seconds, timer=timer,
        )
        self._records = RedisCache(redis, namespace=settings.namespace, ttl=settings.redis_ttl_seconds,
                                   retry_after=settings.redis_retry_after_seconds, timer=timer,
                                   pg_time=self._clock.time, seal=self._seal)
        self._hasher = Hasher(settings)
        self._bus = RevocationBus(redis, pubsub_redis or redis, self._db, self._local, self._records, settings,
                                  instance_id=instance_id or uuid.uuid4().hex[:12], timer=timer,
                                  pg_time=self._clock.time, seal=self._seal)
        self._auth = Authenticator(self._db, self._local, self._records, self._hasher, self._bus, settings,
                                   timer=timer, pg_clock=self._clock, hooks=self._hooks)
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the fleet secret and the clock offset from Postgres (retried in the background if
        Postgres is down now), then start the background loops."""
        with contextlib.suppress(StorageUnavailable):
            await self._sync_with_postgres()
        loops: list[Coroutine[Any, Any, None]] = [
            self._bus.follow(), self._bus.heartbeat(), self._bus.poll(), self._flush_last_used_loop(),
            self._sync_loop()]
        self._tasks = [asyncio.create_task(c) for c in loops]

    async def _sync_with_postgres(self) -> None:
        """Raises StorageUnavailable."""
        if not self._seal.ready:
            self._seal.load(await self._db.fleet_secret())
        await self._clock.measure(self._db.server_time)

    async def _sync_loop(self) -> None:
        while True:
            pause = self.settings.clock_sync_seconds if self._seal.ready and self._clock.measured \
                else self.settings.poll_interval_seconds
            await asyncio.sleep(pause)
            try:
                await self._sync_with_postgres()
            except Exception as exc:  # noqa: BLE001 - a background loop must survive anything
                log.warning("could not read the fleet secret or the Postgres clock: %s", exc)

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
        await self._bus.withdraw()
        with contextlib.suppress(Exception):
            await self.flush_last_used()
        self._hasher.close()

    # -- what the rest of the program may see ---------------------------------------------------------

    @property
    def feed_up(self) -> bool:
        return self._bus.up

    @property
    def instance_id(self) -> str:
        return self._bus.instance_id

    @property
    def clock(self) -> Clock:
        """Postgres time as this instance knows it, as a `Clock` (what `time()` and `now()` read)."""
        return self._clock

    def time(self) -> float:
        """Postgres time as this instance knows it (epoch seconds): what decides a key's fate."""
        return self._clock.time()

    def now(self) -> datetime:
        return self._clock.now()

    def snapshot(self) -> KeystoreSnapshot:
        """Every statistic of the keystore at once, for metrics and readiness."""
        feed = self._bus.stats
        return KeystoreSnapshot(
            auth=dataclasses.replace(self._auth.stats), feed=dataclasses.replace(feed),
            feed_up=self._bus.up, floors_ready=self._bus.floors_ready,
            argon2_verifies=self._hasher.verifies, argon2_pending=self._hasher.pending,
            cached_keys=len(self._local), redis_failures=self._records.failures,
            redis_refused=self._records.refused, fleet_secret_loaded=self._seal.ready,
            clock_offset_s=self._clock.offset, clock_measured=self._clock.measured,
            clock_within_bound=self._clock.within_bound,
        )

    async def live_instances(self) -> list[str]:
        """Instance ids announced in Redis (by Redis' clock). Raises RedisError/OSError."""
        return await self._bus.live_instances()

    async def postgres_ok(self) -> bool:
        try:
            await self._db.ping()
        except StorageUnavailable:
            return False
        return True

    async def redis_ok(self) -> bool:
        return await self._records.ping()

    async def migrate(self) -> list[str]:
        return await self._db.migrate()

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
            await self._db.record_last_used([(k, self._dt(t)) for k, t in used.items()])
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
        return datetime.fromtimestamp(t, tz=self._clock.now().tzinfo)

    async def create(self, actor: Actor, *, name: str, account: str = "default",
                     expires_at: datetime | None = None, allowed_models: Sequence[str] = (),
                     allowed_providers: Sequence[str] = (), limits: Mapping[str, Any] | None = None) -> IssuedKey:
        """Mint, hash and store a key. Raises InvalidInput, StorageUnavailable."""
        now = self._clock.now()
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
            secret_hash=await self._hasher.hash(secret),
        )
        await self._db.insert_key(stored, actor, "key.create", _describe(stored.key))
        log.info("key %s created by %s", key_id, actor.name)
        return IssuedKey(key=stored.key, secret=full)

    async def get(self, key_id: str) -> ApiKey:
        """Raises NotFound, StorageUnavailable."""
        stored = await self._db.fetch_key(key_id) if keygen.is_key_id(key_id) else None
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
        page = await self._db.list_keys(account=account, status=status, limit=limit + 1,
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
            _check_expiry(expires_at, self._clock.now())
            changes["expires_at"] = expires_at
        for col, value in (("allowed_models", allowed_models), ("allowed_providers", allowed_providers)):
            if value is not UNSET:
                changes[col] = list(_names(value, col))
        if limits is not UNSET:
            NO_LIMITS.merged(limits)  # checks every value given; the merge itself happens in Postgres
            changes["limits"] = json.dumps(dict(limits))  # the jsonb parameter, as JSON text
        if not changes:
            raise InvalidInput("nothing to update", field=None)
        audit = {k: _jsonable(v) for k, v in changes.items()}
        if "limits" in changes:
            audit["limits"] = dict(limits)  # the object, as on key.create (the column takes JSON text)
        stored = await self._db.update_key(key_id, changes, self._clock.now(), actor, "key.update", audit)
        if stored is None:
            raise NotFound(f"no key with id {key_id!r}")
        return stored.key, await self._propagate(stored)

    async def revoke(self, actor: Actor, key_id: str) -> tuple[ApiKey, Propagation]:
        """Revoke now, in force from the commit whatever any clock says; idempotent. Returns after the
        commit, the Redis update and the publish. Raises NotFound, StorageUnavailable."""
        stored = await self._db.revoke_key(key_id, actor) if keygen.is_key_id(key_id) else None
        if stored is None:
            raise NotFound(f"no key with id {key_id!r}")
        log.info("key %s revoked by %s", key_id, actor.name)
        return stored.key, await self._propagate(stored)

    async def rotate(self, actor: Actor, key_id: str, *, grace_seconds: float = 0) -> tuple[IssuedKey, ApiKey, Propagation]:
        """New key with the old one's name, account, restrictions and lifetime; the old one ends after
        `grace_seconds` (Postgres time). Returns (new, old, propagation). Raises InvalidInput, NotFound,
        Conflict (the key is revoked, or a revoke of it commits first), StorageUnavailable."""
        if not 0 <= grace_seconds <= 30 * 86400:
            raise InvalidInput("grace_seconds must be between 0 and 2592000", field="grace_seconds")
        if (await self.get(key_id)).status(self.time()) == "revoked":
            raise Conflict(f"key {key_id} is revoked and cannot be rotated")
        full, new_id, secret = keygen.mint()
        secret_hash = await self._hasher.hash(secret)
        await self._hooks.before_rotate_commit(key_id)

        def build(old: StoredKey) -> StoredKey:
            # Checked again under the row lock (pg.rotate_key): a revoke that commits meanwhile wins.
            o, now = old.key, datetime.fromtimestamp(old.read_at, UTC)
            lifetime = None if o.expires_at is None else o.expires_at - o.created_at
            # Every field not named here (restrictions, and whatever a key gains later) is copied.
            return StoredKey(dataclasses.replace(
                o, id=new_id, hint=keygen.hint(full), created_at=now,
                expires_at=None if lifetime is None else now + lifetime, last_used_at=None, revoked_at=None,
                revoked=False, rotated_from=o.id, version=1), secret_hash)

        result = await self._db.rotate_key(key_id, build, grace_seconds, actor, {"grace_seconds": grace_seconds})
        if result is None:
            raise NotFound(f"no key with id {key_id!r}")
        old, new = result
        log.info("key %s rotated to %s by %s (grace %ss)", key_id, new_id, actor.name, grace_seconds)
        return IssuedKey(new.key, full), old.key, await self._propagate(old)

    async def audit(self, *, key_id: str | None = None, limit: int = 100) -> list[AuditEvent]:
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000", field="limit")
        return await self._db.list_audit(key_id=key_id, limit=limit)

    async def _propagate(self, stored: StoredKey) -> Propagation:
        """Committed already; now update Redis, evict here, then publish to every instance."""
        await self._records.put(stored)
        self._local.evict(stored.key.id, stored.key.version)
        return await self._bus.publish(stored.key.id, stored.key.version)


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
