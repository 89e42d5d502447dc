"""The request-path question "is this presented key good right now?", answered cache-first.

Order of work for one presented key:

1. `keygen.parse`: format and checksum; a malformed key costs no I/O at all.
2. In-process cache, keyed by a digest of the whole presented key: a warm hit costs no Postgres query,
   no Redis command and no argon2 hash. An entry is trusted for `cache_ttl_seconds` while the
   revocation feed is up, for `stale_bound_seconds` while it is down; after that it is re-checked
   (a record read, no argon2: the hash of a key id never changes).
3. Negative caches: known-bad presented keys and unknown key ids are refused without I/O.
4. Cold path, single-flighted per presented key: record from Redis if it may be believed (see
   cache.RedisCache), else Postgres (single-flighted per key id), then argon2 on the thread pool, one
   verification at a time per key id so a flood of wrong secrets for one id cannot take every thread,
   with turns handed round-robin across clients so that flood cannot lock the key's holder out.
5. The answer is judged on Postgres time (the local clock plus the measured offset, `ClockSync`);
   a revoked key is refused whatever any clock says.

Every fill of a cache is guarded: the Redis write is compare-and-set on the record version, and the
in-process write is refused when an eviction for a newer version, or a flush, happened meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from cachetools import TTLCache

from . import keygen
from .cache import Entry, LocalCache, RedisCache
from .clock import ClockSync
from .errors import ExpiredKey, RateLimited, RevokedKey, StorageUnavailable, UnknownKey
from .hashing import Hasher
from .models import ApiKey, AuthStats, StoredKey
from .pg import Database
from .revocation import RevocationBus
from .settings import KeystoreSettings
from .turns import TurnTable

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


class Hooks:
    """Points where tests can pause the request path to force an interleaving. No-ops in production."""

    async def after_db_read(self, key_id: str) -> None:
        return None

    async def before_rotate_commit(self, key_id: str) -> None:
        return None


class _SingleFlight(Generic[K, V]):
    """Concurrent callers with the same key share one task; a cancelled caller does not cancel it."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Future[V]) -> None:
        self._tasks.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here so an unawaited failure is not reported as lost


class Authenticator:
    def __init__(self, db: Database, local: LocalCache, records: RedisCache, hasher: Hasher,
                 bus: RevocationBus, settings: KeystoreSettings, *, timer: Callable[[], float],
                 pg_clock: ClockSync, hooks: Hooks) -> None:
        self._db, self._local, self._records, self._hasher = db, local, records, hasher
        self._bus, self._s, self._timer, self._hooks = bus, settings, timer, hooks
        self._pg_clock = pg_clock  # `timer` is its local clock: Postgres time is `timer() + offset`
        self._verifying: _SingleFlight[bytes, StoredKey] = _SingleFlight()
        self._loading: _SingleFlight[tuple[str, bool], StoredKey | None] = _SingleFlight()
        self._turns = TurnTable()
        self._failures: TTLCache[tuple[str, str], int] = TTLCache(
            100_000, settings.failure_window_seconds, timer=timer)
        self.last_used: dict[str, float] = {}
        self.stats = AuthStats()

    async def authenticate(self, presented: str, client: str = "") -> ApiKey:
        """Raises MalformedKey, UnknownKey, RevokedKey, ExpiredKey, RateLimited, StorageUnavailable."""
        # Cache first: an entry exists only for a presented key that parsed and verified, so a hit
        # needs no parsing (the checksum costs more than the lookup).
        digest = keygen.digest(presented)
        now = self._timer()
        entry = self._local.get(digest)
        if entry is not None and now - entry.verified_at <= self._trust_window():
            self.stats.local_hits += 1
            return self._admit(entry.stored.key, entry.until, now + self._pg_clock.offset)
        key_id, secret = keygen.parse(presented)
        self.stats.local_misses += 1
        if entry is not None:
            stored = await self._recheck(entry, digest, key_id, now)
        else:
            self._refuse_known_bad(digest, key_id, client)
            stored = await self._verifying.run(digest, lambda: self._verify_cold(digest, key_id, secret, client))
        return self._admit(stored.key, stored.key.usable_until(), self._pg_clock.time())

    def _trust_window(self) -> float:
        return self._s.cache_ttl_seconds if self._bus.up else self._s.stale_bound_seconds

    def _admit(self, key: ApiKey, until: float, now: float) -> ApiKey:
        """`now` is Postgres time; `until` the key's end in Postgres time (-inf once revoked)."""
        if now >= until:
            if key.status(now) == "revoked":
                raise RevokedKey(f"key {key.id} is revoked")
            raise ExpiredKey(f"key {key.id} has expired")
        self.last_used[key.id] = now
        return key

    async def _recheck(self, entry: Entry, digest: bytes, key_id: str, now: float) -> StoredKey:
        """Confirm an entry that outlived its trust window against the stores (no argon2)."""
        self.stats.rechecks += 1
        generation = self._local.generation
        try:
            # With the feed down, Redis may have missed the update too: ask Postgres.
            stored = await self._load(key_id, fresh=not self._bus.up)
        except StorageUnavailable:
            if self._bus.up and now - entry.verified_at <= self._s.pg_down_grace_seconds:
                return entry.stored
            raise
        if stored is None or stored.secret_hash != entry.stored.secret_hash:
            self._local.forget(key_id)
            raise UnknownKey(f"key {key_id} no longer exists")
        return await self._settle(digest, key_id, stored, generation)

    def _refuse_known_bad(self, digest: bytes, key_id: str, client: str) -> None:
        """Refuse, before any I/O or argon2: a presented key already found wrong, an unknown key id, a
        client that keeps failing for this key id, and a client with too many verifications of this
        key id already queued. Every limit is per (key id, client): one client's failures never
        refuse another client (the per-id turns bound the CPU, `max_pending_verifies` the memory)."""
        if self._local.is_bad(digest) or self._local.is_unknown(key_id):
            self.stats.negative_hits += 1
            raise UnknownKey(f"key {key_id} is unknown or its secret is wrong (cached)")
        over = self._failures.get((key_id, client), 0) >= self._s.failure_threshold
        if over or self._turns.waiting(key_id, client) >= self._s.max_waiting_per_client:
            self.stats.rate_limited += 1
            raise RateLimited(f"too many failed or pending verifications for key {key_id} from this client",
                              retry_after=self._s.failure_window_seconds)

    async def _verify_cold(self, digest: bytes, key_id: str, secret: str, client: str) -> StoredKey:
        generation = self._local.generation
        stored = await self._load(key_id, fresh=False)
        if stored is None:
            self._local.mark_unknown(key_id)
            raise UnknownKey(f"key {key_id} does not exist")
        async with self._turns.turn(key_id, client):
            ok = await self._hasher.verify(stored.secret_hash, secret)
        if not ok:
            self._local.mark_bad(digest)
            self._failures[(key_id, client)] = self._failures.get((key_id, client), 0) + 1
            raise UnknownKey(f"wrong secret for key {key_id}")
        return await self._settle(digest, key_id, stored, generation)

    async def _settle(self, digest: bytes, key_id: str, stored: StoredKey, generation: int) -> StoredKey:
        """Cache `stored` unless an eviction or flush landed while it was loaded; then load it again."""
        if self._local.put(digest, stored, generation):
            return stored
        # What we hold may predate a revocation: answer from Postgres, not from what we loaded.
        generation = self._local.generation
        fresh = await self._load(key_id, fresh=True)
        if fresh is None:
            raise UnknownKey(f"key {key_id} no longer exists")
        self._local.put(digest, fresh, generation)
        return fresh

    async def _load(self, key_id: str, *, fresh: bool) -> StoredKey | None:
        return await self._loading.run((key_id, fresh), lambda: self._load_once(key_id, fresh))

    async def _load_once(self, key_id: str, fresh: bool) -> StoredKey | None:
        # Redis records are believed only once this instance knows the version floors (first full
        # poll of the change log), and only at or above them.
        if not fresh and self._bus.floors_ready:
            stored = await self._records.get(key_id, floor=self._local.floor(key_id))
            if stored is not None:
                self.stats.redis_hits += 1
                return stored
            self.stats.redis_misses += 1
        started = self._timer()
        self.stats.db_reads += 1
        stored = await self._db.fetch_key(key_id)
        await self._hooks.after_db_read(key_id)
        # A loader that took too long may hold a record older than any tombstone still in Redis.
        if stored is not None and self._timer() - started <= self._s.fill_max_age_seconds:
            await self._records.put(stored)
        return stored
