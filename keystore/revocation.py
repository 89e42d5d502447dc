"""The revocation bus: publish evictions, follow them on every instance, and the Postgres backstop.

Three loops run per instance:

* `follow` subscribes to `<ns>:revocations` and evicts on every message, then acknowledges it so the
  revoking call can report how many instances confirmed. Pub/sub is at-most-once: the local cache is
  flushed on every (re)subscription, the subscription is PINGed so a half-open connection is found,
  and `up` is False while it is down (the caller then trusts cached entries only for a short bound).
* `heartbeat` announces the instance in `<ns>:instances` (a sorted set scored by time).
* `poll` reads Postgres' `key_changes` log: a message lost on the bus, or a revoke whose Redis update
  failed, costs one poll interval of staleness instead of an unbounded one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .cache import LocalCache, RedisCache
from .errors import KeystoreError
from .models import Propagation
from .pg import Database
from .settings import KeystoreSettings

log = logging.getLogger(__name__)
_CHANGE_OVERLAP_S = 30.0  # a mutation commits well within this of its key_changes timestamp


@dataclass(slots=True)
class FeedStats:
    messages: int = 0
    flushes: int = 0
    reconnects: int = 0
    backstop_evictions: int = 0
    polls: int = 0
    heartbeats: int = 0
    last_lag_s: float = 0.0  # publish → local eviction, for the most recent message


class RevocationBus:
    def __init__(self, redis: Redis, pubsub_redis: Redis, db: Database, local: LocalCache,
                 records: RedisCache, settings: KeystoreSettings, *, instance_id: str,
                 timer: Callable[[], float]) -> None:
        self._redis, self._pubsub_redis, self._db = redis, pubsub_redis, db
        self._local, self._records, self._s = local, records, settings
        self.instance_id = instance_id
        self._timer = timer
        ns = settings.namespace
        self.channel = f"{ns}:revocations"
        self._instances_key = f"{ns}:instances"
        self._ack_prefix = f"{ns}:ack:"
        self.up = False
        self.down_since: float = timer()
        self.stats = FeedStats()
        self._confirmed: TTLCache[tuple[str, int], bool] = TTLCache(100_000, settings.redis_ttl_seconds * 2)
        self._seen: TTLCache[tuple[str, int], bool] = TTLCache(100_000, settings.redis_ttl_seconds * 2)
        self._poll_ok = False

    # -- publishing -------------------------------------------------------------------------------

    async def publish(self, key_id: str, version: int) -> Propagation:
        """Announce that `key_id` changed (now at `version`) and wait, bounded, for acknowledgements."""
        rev = uuid.uuid4().hex
        msg = orjson.dumps({"id": key_id, "v": version, "rev": rev, "at": time.time()})
        try:
            live = await self.live_instances()
            await self._redis.publish(self.channel, msg)
        except (RedisError, OSError) as exc:
            log.warning("revocation of %s not published (%s); the Postgres backstop will carry it",
                        key_id, exc.__class__.__name__)
            return Propagation(instances=0, confirmed=0, published=False)
        confirmed = await self._await_acks(rev, set(live))
        return Propagation(instances=len(live), confirmed=len(confirmed), published=True)

    async def live_instances(self) -> list[str]:
        cutoff = time.time() - 3 * self._s.heartbeat_seconds
        members = await self._redis.zrangebyscore(self._instances_key, cutoff, "+inf")
        return [_text(m) for m in members]

    async def _await_acks(self, rev: str, live: set[str]) -> set[str]:
        got: set[str] = set()
        # Real time, not the injectable clock: this is a wait, and other processes answer it.
        deadline = time.monotonic() + self._s.ack_timeout_seconds
        key = self._ack_prefix + rev
        try:
            while not live <= got:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                item = await self._redis.blpop([key], timeout=max(left, 0.01))
                if item is not None:
                    got.add(_text(item[1]))
        except (RedisError, OSError) as exc:
            log.warning("stopped waiting for revocation acks: %s", exc.__class__.__name__)
        return got & live

    # -- following --------------------------------------------------------------------------------

    async def follow(self) -> None:
        """Run forever: subscribe, evict on messages, resubscribe (and flush) after any failure."""
        while True:
            try:
                await self._follow_once()
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("revocation feed lost (%s), retrying in %.1fs", exc.__class__.__name__,
                            self._s.resubscribe_delay_seconds)
            except Exception:  # a background loop must survive anything
                log.exception("revocation feed crashed; restarting")
            self._mark_down()
            await asyncio.sleep(self._s.resubscribe_delay_seconds)

    def _mark_down(self) -> None:
        if self.up:
            self.up = False
            self.down_since = self._timer()

    async def _follow_once(self) -> None:
        ps = self._pubsub_redis.pubsub()
        try:
            await ps.subscribe(self.channel)
            awaiting_pong = False
            while True:
                msg = await ps.get_message(timeout=self._s.ping_interval_seconds)
                if msg is None:
                    if awaiting_pong:
                        raise TimeoutError("revocation feed did not answer PING")
                    await ps.ping()
                    awaiting_pong = True
                    continue
                awaiting_pong = False
                await self._handle(msg)
        finally:
            self._mark_down()
            await ps.aclose()  # type: ignore[no-untyped-call]

    async def _handle(self, msg: dict[str, object]) -> None:
        kind = msg["type"]
        if kind == "subscribe":
            # Every confirmation, first or after a silent reconnect inside redis-py, means messages
            # may have been missed since we last listened: start from an empty cache.
            self._local.flush()
            self.stats.flushes += 1
            if not self.up and self.stats.flushes > 1:
                self.stats.reconnects += 1
            self.up = True
            log.info("revocation feed subscribed on %s; local cache flushed", self.channel)
        elif kind == "message":
            await self._on_revocation(orjson.loads(msg["data"]))  # type: ignore[arg-type]

    async def _on_revocation(self, body: dict[str, object]) -> None:
        key_id, version = str(body["id"]), int(body["v"])  # type: ignore[call-overload]
        self._local.evict(key_id, version)
        self.stats.messages += 1
        self.stats.last_lag_s = max(0.0, time.time() - float(body["at"]))  # type: ignore[arg-type]
        try:
            key = self._ack_prefix + str(body["rev"])
            pipe = self._redis.pipeline(transaction=False)
            pipe.rpush(key, self.instance_id)
            pipe.expire(key, 60)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not acknowledge revocation of %s: %s", key_id, exc.__class__.__name__)

    # -- presence ---------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        while True:
            try:
                now = time.time()  # presence is compared across processes: real time
                pipe = self._redis.pipeline(transaction=False)
                pipe.zadd(self._instances_key, {self.instance_id: now})
                pipe.zremrangebyscore(self._instances_key, "-inf", now - 60 * self._s.heartbeat_seconds)
                await pipe.execute()
                self.stats.heartbeats += 1
            except (RedisError, OSError) as exc:
                log.warning("instance heartbeat failed: %s", exc.__class__.__name__)
            await asyncio.sleep(self._s.heartbeat_seconds)

    async def withdraw(self) -> None:
        try:
            await self._redis.zrem(self._instances_key, self.instance_id)
        except (RedisError, OSError):
            pass

    # -- the Postgres backstop --------------------------------------------------------------------

    async def poll(self) -> None:
        polls = 0
        while True:
            try:
                if polls % 3600 == 0:
                    await self._db.prune_changes(max(86400.0, 4 * self._s.redis_ttl_seconds))
                await self.poll_once()
                polls += 1
            except KeystoreError as exc:
                self._poll_ok = False
                log.warning("revocation backstop poll failed: %s", exc)
            except Exception:  # a background loop must survive anything
                self._poll_ok = False
                log.exception("revocation backstop poll crashed")
            await asyncio.sleep(self._s.poll_interval_seconds)

    async def poll_once(self) -> None:
        """Evict every key changed recently and make sure Redis holds no older record of it.

        After a failed poll, a failed Redis write or at start, the window covers the whole Redis
        record lifetime, which is as far back as a stale Redis record could have been written.
        """
        window = _CHANGE_OVERLAP_S if self._poll_ok else self._s.redis_ttl_seconds + _CHANGE_OVERLAP_S
        all_ok = True
        for key_id, version in await self._db.recent_changes(window):
            if (key_id, version) not in self._seen:
                self._seen[(key_id, version)] = True
                self._local.evict(key_id, version)
                self.stats.backstop_evictions += 1
            if (key_id, version) not in self._confirmed:
                all_ok = await self._repair(key_id, version) and all_ok
        self._poll_ok = all_ok
        self.stats.polls += 1

    async def _repair(self, key_id: str, version: int) -> bool:
        stored = await self._db.fetch_key(key_id)
        if stored is None:
            return True
        if not self._records.available:
            return False
        if await self._records.put(stored) or self._records.available:
            self._confirmed[(key_id, version)] = True
            return True
        return False


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
