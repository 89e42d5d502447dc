"""The revocation bus: publish evictions, follow them on every instance, and the Postgres backstop.

Three loops run per instance:

* `follow` subscribes to the revocations channel and evicts on every message, then acknowledges it
  so the revoking call can report how many instances confirmed. Pub/sub is at-most-once: the local
  cache is flushed on every (re)subscription, the subscription is PINGed so a half-open connection is
  found, and `up` is False while it is down (the caller then trusts cached entries only for a short
  bound).
* `heartbeat` announces the instance in a sorted set scored by Redis' own clock (one clock for the
  whole fleet: a skewed instance is neither dropped from nor kept in the count by its own clock).
* `poll` reads Postgres' `key_changes` log: a message lost on the bus, or a revoke whose Redis update
  failed, costs one poll interval of staleness instead of an unbounded one. Its first full poll sets
  the version floors (`floors_ready`) below which no Redis record is believed.

Messages and acknowledgements carry a MAC (seal.py): a client that can write to Redis cannot evict
at will, raise version floors, or make a revoke report an instance as confirmed that did not confirm.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import orjson
from cachetools import TTLCache
from redis.exceptions import RedisError

from . import names
from .cache import LocalCache, RedisCache
from .clients import PubSubSource, RedisClient
from .errors import KeystoreError
from .models import FeedStats, Propagation
from .pg import Database
from .seal import Seal
from .settings import KeystoreSettings

log = logging.getLogger(__name__)
_CHANGE_OVERLAP_S = 30.0  # a mutation commits well within this of its key_changes timestamp
_MESSAGE, _ACK = b"revocation", b"revocation-ack"
# KEYS[1] instances; ARGV[1] instance id; ARGV[2] forget after (s). Scored by Redis' clock.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return 1
"""
# KEYS[1] instances; ARGV[1] live window (s).
_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""


class RevocationBus:
    def __init__(self, redis: RedisClient, pubsub_redis: PubSubSource, db: Database, local: LocalCache,
                 records: RedisCache, settings: KeystoreSettings, *, instance_id: str,
                 timer: Callable[[], float], pg_time: Callable[[], float], seal: Seal) -> None:
        self._redis, self._pubsub_redis, self._db = redis, pubsub_redis, db
        self._local, self._records, self._s = local, records, settings
        self.instance_id = instance_id
        self._timer, self._pg_time, self._seal = timer, pg_time, seal
        ns = settings.namespace
        self.channel = names.revocations(ns)
        self._instances_key = names.instances(ns)
        self._ns = ns
        self.up = False
        self.down_since: float = timer()
        self.stats = FeedStats()
        self._confirmed: TTLCache[tuple[str, int], bool] = TTLCache(100_000, settings.redis_ttl_seconds * 2)
        self._seen: TTLCache[tuple[str, int], bool] = TTLCache(100_000, settings.redis_ttl_seconds * 2)
        self._poll_ok = False
        self.floors_ready = False  # a full poll has set the version floors since start
        self._heartbeat_script = redis.register_script(_HEARTBEAT)
        self._live_script = redis.register_script(_LIVE)

    # -- publishing -------------------------------------------------------------------------------

    async def publish(self, key_id: str, version: int) -> Propagation:
        """Announce that `key_id` changed (now at `version`) and wait, bounded, for acknowledgements."""
        rev = uuid.uuid4().hex
        body = orjson.dumps({"id": key_id, "v": version, "rev": rev, "at": self._pg_time()})
        try:
            live = await self.live_instances()
            if not self._seal.ready:
                raise RedisError("no fleet secret yet: cannot sign the message")
            await self._redis.publish(self.channel, self._seal.sign(_MESSAGE, body) + b"|" + body)
        except (RedisError, OSError) as exc:
            log.warning("revocation of %s not published (%s); the Postgres backstop will carry it",
                        key_id, exc.__class__.__name__)
            return Propagation(instances=0, confirmed=0, published=False)
        confirmed = await self._await_acks(rev, set(live))
        return Propagation(instances=len(live), confirmed=len(confirmed), published=True)

    async def live_instances(self) -> list[str]:
        """Instances that announced themselves recently, by Redis' clock (never a local one)."""
        members = await self._live_script(keys=[self._instances_key], args=[3 * self._s.heartbeat_seconds])
        return [_text(m) for m in members]

    async def _await_acks(self, rev: str, live: set[str]) -> set[str]:
        got: set[str] = set()
        # Real time, not the injectable clock: this is a wait, and other processes answer it.
        deadline = time.monotonic() + self._s.ack_timeout_seconds
        key = names.acks(self._ns, rev)
        try:
            while not live <= got:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                item = await self._redis.blpop([key], timeout=max(left, 0.01))
                if item is not None:
                    got |= self._genuine_ack(rev, item[1])
        except (RedisError, OSError) as exc:
            log.warning("stopped waiting for revocation acks: %s", exc.__class__.__name__)
        return got & live

    def _genuine_ack(self, rev: str, raw: bytes | str) -> set[str]:
        mac, _, instance = (raw if isinstance(raw, bytes) else raw.encode()).partition(b"|")
        if self._seal.check(mac, _ACK, rev.encode(), instance):
            return {instance.decode()}
        self.stats.forged += 1
        log.warning("ignored a forged acknowledgement of change %s", rev)
        return set()

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
            await self._on_message(msg["data"])

    async def _on_message(self, data: object) -> None:
        raw = data if isinstance(data, bytes) else str(data).encode()
        mac, _, body = raw.partition(b"|")
        if not self._seal.check(mac, _MESSAGE, body):
            # Not from an instance of this fleet: evicting or raising a floor on its word would let a
            # Redis writer force any key back to Postgres on every request.
            self.stats.forged += 1
            log.warning("ignored a forged message on %s", self.channel)
            return
        await self._on_revocation(orjson.loads(body))

    async def _on_revocation(self, body: dict[str, object]) -> None:
        key_id, version, rev = str(body["id"]), int(body["v"]), str(body["rev"])  # type: ignore[call-overload]
        self._local.evict(key_id, version)
        self.stats.messages += 1
        self.stats.last_lag_s = max(0.0, self._pg_time() - float(body["at"]))  # type: ignore[arg-type]
        try:
            key = names.acks(self._ns, rev)
            pipe = self._redis.pipeline(transaction=False)
            pipe.rpush(key, self._seal.sign(_ACK, rev.encode(), self.instance_id.encode()) + b"|"
                       + self.instance_id.encode())
            pipe.expire(key, 60)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not acknowledge revocation of %s: %s", key_id, exc.__class__.__name__)

    # -- presence ---------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        while True:
            try:
                await self._heartbeat_script(keys=[self._instances_key],
                                             args=[self.instance_id, 60 * self._s.heartbeat_seconds])
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
        if not self._poll_ok:
            self.floors_ready = True  # the window covered a whole record lifetime
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
