"""The two cache layers in front of Postgres: the in-process cache and the shared Redis record cache.

In-process (`LocalCache`): verified keys keyed by a digest of the whole presented key, so a wrong
secret can never match an entry; negative caches for unknown key ids and known-bad presented keys.

Redis (`RedisCache`): key records (public fields, version, argon2 hash and the Postgres time they were
read; never a secret) under `names.record`, as `<version>|<mac>|<json>`. Writes go through a
compare-and-set script that never replaces a newer version with an older one, which closes the
cache-fill race across instances; reads believe only what an instance of this fleet wrote, recently,
at a version no older than the newest this instance knows (see `RedisCache`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from cachetools import TLRUCache, TTLCache
from redis.exceptions import RedisError

from . import names
from .clients import RedisClient
from .models import StoredKey
from .record import from_json, to_json
from .seal import Seal

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """A presented key that passed argon2, and the record it was checked against."""

    stored: StoredKey
    verified_at: float  # last time the record was confirmed against Redis/Postgres
    until: float  # the key's own end (expiry or scheduled revocation), epoch seconds


class LocalCache:
    """In-process caches. Every write is guarded against stale loaders (see `may_fill`)."""

    def __init__(self, *, size: int, lifetime: float, negative_size: int, negative_ttl: float,
                 version_memory: float, timer: Callable[[], float]) -> None:
        self._timer = timer
        # An entry lives until its re-check horizon. It is never trusted past the key's own end:
        # every hit compares `until` with the clock (see verify.py), and an entry kept past that end
        # answers "expired/revoked" without another argon2 verification.
        self._entries: TLRUCache[bytes, Entry] = TLRUCache(
            maxsize=size, ttu=lambda _k, _e, now: now + lifetime, timer=timer
        )
        self._by_id: dict[str, bytes] = {}  # key id -> digest of its one verified presented form
        self._unknown_ids: TTLCache[str, bool] = TTLCache(negative_size, negative_ttl, timer=timer)
        self._bad: TTLCache[bytes, bool] = TTLCache(negative_size, negative_ttl, timer=timer)
        # Newest version known per key id, from evictions; a loader holding an older one may not fill.
        self._versions: TTLCache[str, int] = TTLCache(negative_size, version_memory, timer=timer)
        self.generation = 0  # bumped by every flush

    def get(self, digest: bytes) -> Entry | None:
        return self._entries.get(digest)

    def may_fill(self, stored: StoredKey, generation: int) -> bool:
        if generation != self.generation:
            return False
        return stored.key.version >= self._versions.get(stored.key.id, 0)

    def put(self, digest: bytes, stored: StoredKey, generation: int) -> bool:
        if not self.may_fill(stored, generation):
            return False
        self._entries[digest] = Entry(stored, self._timer(), stored.key.usable_until())
        self._by_id[stored.key.id] = digest
        self._unknown_ids.pop(stored.key.id, None)
        return True

    def floor(self, key_id: str) -> int:
        """The newest version of `key_id` this instance has heard of (0: none within the memory)."""
        return self._versions.get(key_id, 0)

    def evict(self, key_id: str, version: int) -> None:
        """The key changed (now at `version`): its entry may no longer be trusted as it stands.

        The entry is kept but marked unconfirmed: its next use re-reads the record (no argon2 — the
        presented key was verified against this key id's hash, which never changes), so a revoked
        key is refused at the cost of a record read, not of a verification.
        """
        if version > self._versions.get(key_id, 0):
            self._versions[key_id] = version
        digest = self._by_id.get(key_id)
        entry = self._entries.get(digest) if digest is not None else None
        if entry is not None:
            entry.verified_at = float("-inf")
        self._unknown_ids.pop(key_id, None)

    def forget(self, key_id: str) -> None:
        digest = self._by_id.pop(key_id, None)
        if digest is not None:
            self._entries.pop(digest, None)

    def flush(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._by_id.clear()
        self._unknown_ids.clear()

    def mark_unknown(self, key_id: str) -> None:
        self._unknown_ids[key_id] = True

    def is_unknown(self, key_id: str) -> bool:
        return key_id in self._unknown_ids

    def mark_bad(self, digest: bytes) -> None:
        self._bad[digest] = True

    def is_bad(self, digest: bytes) -> bool:
        return digest in self._bad

    def __len__(self) -> int:
        return len(self._entries)


# KEYS[1] record key; ARGV[1] version; ARGV[2] value; ARGV[3] ttl ms.
# Writes only when no record is there or the one there is older. (The version prefix is not
# authenticated; a forged high one is deleted by the reader that refuses it, see `RedisCache.get`.)
_SET_IF_NEWER = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^(%d+)|'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS[1] record key; ARGV[1] the exact value refused. Deletes it unless someone replaced it meanwhile.
_DELETE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RECORD = b"key-record"


class RedisCache:
    """Key records in Redis, as `<version>|<mac>|<json>`. Redis is only a cache, and not trusted:

    * a record is believed only when its MAC (fleet secret, see seal.py) is right for its key id, its
      Postgres read time (`read_at`) is less than `ttl` old in Postgres time, and its version is not
      below the newest version this instance knows of (`floor`). Anything else is refused, counted,
      logged and deleted, and the caller reads Postgres;
    * every failure is swallowed and reported as a miss; after one, Redis is skipped for `retry_after`
      seconds so a dead Redis costs one timeout, not one per request.
    """

    def __init__(self, redis: RedisClient, *, namespace: str, ttl: float, retry_after: float,
                 timer: Callable[[], float], pg_time: Callable[[], float], seal: Seal) -> None:
        self._redis = redis
        self._ns = namespace
        self._ttl = ttl
        self._retry_after = retry_after
        self._timer, self._pg_time, self._seal = timer, pg_time, seal
        self._down_until = 0.0
        self.failures = 0
        self.refused = 0  # records read but not believed (forged, stale, below the floor)
        self._set_if_newer = redis.register_script(_SET_IF_NEWER)
        self._delete_if_same = redis.register_script(_DELETE_IF_SAME)

    def record_key(self, key_id: str) -> str:
        return names.record(self._ns, key_id)

    @property
    def available(self) -> bool:
        return self._seal.ready and self._timer() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        log.warning("redis cache unavailable (%s); skipping it for %.1fs", exc.__class__.__name__,
                    self._retry_after)
        self._down_until = self._timer() + self._retry_after

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def get(self, key_id: str, *, floor: int = 0) -> StoredKey | None:
        """The record of `key_id` if Redis holds one this instance may believe (see the class)."""
        if not self.available:
            return None
        try:
            raw = await self._redis.get(self.record_key(key_id))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        if raw is None:
            return None
        raw = raw if isinstance(raw, bytes) else raw.encode()
        stored, why = self._believe(key_id, raw, floor)
        if stored is None:
            await self._refuse(key_id, raw, why)
        return stored

    def _believe(self, key_id: str, raw: bytes, floor: int) -> tuple[StoredKey | None, str]:
        version, _, rest = raw.partition(b"|")
        mac, _, body = rest.partition(b"|")
        if not self._seal.check(mac, _RECORD, key_id.encode(), version, body):
            return None, "its MAC is wrong (not written by an instance of this fleet)"
        try:
            stored = from_json(orjson.loads(body))
        except (KeyError, ValueError, TypeError):  # e.g. written by an instance of another release
            return None, "its body does not fit this release's key record"
        if stored.key.id != key_id or str(stored.key.version).encode() != version:
            return None, "it names another key or version"
        if self._pg_time() - stored.read_at > self._ttl:
            return None, "it was read from Postgres longer ago than a record may live"
        if stored.key.version < floor:
            return None, f"its version {stored.key.version} is below the newest known ({floor})"
        return stored, ""

    async def _refuse(self, key_id: str, raw: bytes, why: str) -> None:
        self.refused += 1
        log.warning("refused the Redis record of key %s: %s", key_id, why)
        try:
            await self._delete_if_same(keys=[self.record_key(key_id)], args=[raw])
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def put(self, stored: StoredKey) -> bool:
        """Store the record unless Redis already holds this version or a newer one."""
        if not self.available:
            return False
        k = stored.key
        version, body = str(k.version).encode(), orjson.dumps(to_json(stored))
        value = b"|".join((version, self._seal.sign(_RECORD, k.id.encode(), version, body), body))
        try:
            written = await self._set_if_newer(keys=[self.record_key(k.id)],
                                               args=[k.version, value, int(self._ttl * 1000)])
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False
        return bool(written)
