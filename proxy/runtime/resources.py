"""Cleanup contexts: the Postgres pool, the Redis clients and keystore, the start watch, the upstream HTTP session.

Each is an async generator with exactly one `yield`; aiohttp tears down, in reverse order, only the
contexts that started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from keystore import KeyStore

from proxy.config import Config, PostgresConfig, RedisConfig, split_listen
from proxy.runtime.lifecycle import watch_start
from proxy.state import CLOCK, CONFIG, KEYSTORE, LIFECYCLE, METRICS, UPSTREAM_HTTP

log = logging.getLogger(__name__)


class Cluster(RedisCluster):
    """redis-py's cluster client, except that "the cluster cannot be reached" is a RedisError like every
    other Redis failure (redis-py raises RedisClusterException, which is not one), so every caller that
    treats Redis as a cache falls back instead of failing the request."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        # mypy sees an abstract attribute that ClusterPipeline.__init__ sets: it is not abstract.
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc


class ClusterFeed:
    """Where the revocation feed subscribes on a Redis Cluster.

    A PUBLISH on any node of a cluster reaches the subscribers of every node, so the feed subscribes
    (through redis-py's cluster pub/sub) on one node at a time, the next known node after each failure.
    A node's failure is a lost feed like any other: the keystore resubscribes and flushes its cache.
    """

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._turn = 0

    def pubsub(self) -> PubSub:
        nodes = self._cluster.get_nodes()
        if not nodes:  # topology not known yet (nothing reached the cluster): fail this attempt
            return _Unready(self._cluster)
        self._turn += 1
        return self._cluster.pubsub(node=nodes[self._turn % len(nodes)])

    async def aclose(self) -> None:
        """Nothing of its own: its connections belong to the cluster client's node pools."""


class _Unready(PubSub):
    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__(connection_pool=None, encoder=cluster.encoder)  # type: ignore[arg-type]
        self._cluster = cluster

    async def subscribe(self, *args: Any, **kwargs: Any) -> None:
        try:
            await self._cluster.initialize()
        except RedisClusterException as exc:
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc
        raise RedisConnectionError("redis cluster topology was not known yet; resubscribing")


class SentinelFeed:
    """Where the revocation feed subscribes in sentinel mode: on the primary the sentinels name.

    After a planned failover the old primary stays up as a replica and Redis keeps its subscribers
    connected; replication still carries PUBLISH there, but such a feed hangs on a link it cannot see.
    So each liveness PING first asks the sentinels for the primary, and a subscription that is no
    longer on it fails like a lost feed (the keystore resubscribes, on the new primary, and flushes).
    While no sentinel answers, the check is skipped: the PING alone decides.
    """

    def __init__(self, client: Redis, sentinels: Sentinel) -> None:
        self._client = client
        self._sentinels = sentinels

    def pubsub(self) -> PubSub:
        return _PrimaryPubSub(self._client.connection_pool)

    async def aclose(self) -> None:
        """Close the feed's connections and the connections to the sentinels (closed last: redis-py
        leaves those to whoever made the `Sentinel`, and the command client asks them too)."""
        await self._client.aclose()
        await self._sentinels.aclose()


class _PrimaryPubSub(PubSub):
    async def ping(self, message: Any = None) -> Any:
        pool = self.connection_pool
        conn = self.connection
        if isinstance(pool, SentinelConnectionPool) and conn is not None:
            try:
                primary = await pool.sentinel_manager.discover_master(pool.service_name)
            except MasterNotFoundError:
                primary = None
            here = (getattr(conn, "host", None), getattr(conn, "port", None))
            if primary is not None and tuple(primary) != here:
                raise RedisConnectionError(f"the subscription's server {here} is no longer the primary {primary}")
        return await super().ping(message)


def _server_kwargs(r: RedisConfig, *, feed: bool) -> dict[str, Any]:
    """Connection settings shared by every mode. The command client retries once (a failover or a
    reconnect costs one retry, so one Redis call is bounded by 2 x (connect + read timeout)); the
    feed never retries inside redis-py: it resubscribes, and flushes, itself."""
    kw: dict[str, Any] = {
        "socket_connect_timeout": r.connect_timeout_seconds,
        "socket_timeout": None if feed else r.timeout_seconds,
        "retry": Retry(NoBackoff(), 0 if feed else 1),
    }
    if r.username:
        kw["username"] = r.username
    if r.password:
        kw["password"] = r.password
    return kw


def _sentinel_clients(r: RedisConfig) -> tuple[Redis, SentinelFeed]:
    url = parse_url(r.url)  # sentinel mode: the url gives only the scheme (TLS) and the database
    tls = url.get("connection_class") is SSLConnection
    extra: dict[str, Any] = {k: v for k, v in url.items() if k.startswith("ssl_") or k == "db"}
    to_sentinels: dict[str, Any] = {
        "socket_connect_timeout": r.connect_timeout_seconds, "socket_timeout": r.timeout_seconds,
        "retry": Retry(NoBackoff(), 0), **{k: v for k, v in extra.items() if k != "db"},
    }
    if tls:
        to_sentinels["ssl"] = True
    if r.sentinel_password:
        to_sentinels["password"] = r.sentinel_password
    sentinels = Sentinel([split_listen(s) for s in r.sentinels], sentinel_kwargs=to_sentinels)  # type: ignore[no-untyped-call]
    main, feed = (sentinels.master_for(r.master_name, redis_class=Redis, ssl=tls, **extra,
                                       **_server_kwargs(r, feed=feed)) for feed in (False, True))
    return main, SentinelFeed(feed, sentinels)


def redis_clients(config: Config) -> tuple[Redis | RedisCluster, Redis | ClusterFeed | SentinelFeed]:
    """The command/cache client (short timeouts) and the pub/sub source (no read timeout: it is
    PINGed instead, and no silent internal retries: the feed loop resubscribes and flushes itself).

    `[redis] mode` picks redis-py's own client: a plain one, Sentinel's `master_for` (follows the
    sentinels' choice of primary on every reconnect) or the cluster client.
    """
    r = config.redis
    if r.mode == "sentinel":
        return _sentinel_clients(r)
    if r.mode == "cluster":
        # Not require_full_coverage: while one master is down, keys on the other masters still work.
        cluster = Cluster.from_url(r.url, require_full_coverage=False, **_server_kwargs(r, feed=False))
        return cluster, ClusterFeed(cluster)
    return Redis.from_url(r.url, **_server_kwargs(r, feed=False)), Redis.from_url(r.url, **_server_kwargs(r, feed=True))


def pool_options(pg: PostgresConfig) -> dict[str, Any]:
    """asyncpg options that depend on what is in front of Postgres.

    Behind PgBouncer in transaction mode consecutive transactions may run on different server
    sessions, so nothing may outlive a transaction: no prepared-statement cache (asyncpg then uses
    unnamed statements), and no session state (the keystore takes only transaction-scoped locks).
    """
    return {"statement_cache_size": 0} if pg.pgbouncer else {}


async def create_pool(config: Config) -> asyncpg.Pool:
    """A pool that opens lazily: the proxy starts (and serves warm keys) even while Postgres is down.

    A DSN may name several hosts with `target_session_attrs=read-write`: asyncpg tries them in order
    on every new connection, so after a failover the promoted primary is found by the next connection.
    """
    pg = config.postgres
    return await asyncpg.create_pool(
        pg.dsn, min_size=0, max_size=pg.pool_max, timeout=pg.connect_timeout_seconds,
        command_timeout=pg.timeout_seconds, password=pg.password or None,
        max_inactive_connection_lifetime=60, **pool_options(pg),
    )


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = await create_pool(config)
    main, feed = redis_clients(config)
    store = KeyStore(pool, main, config.keystore, pubsub_redis=feed, clock=app.get(CLOCK),
                     db_timeout=config.postgres.timeout_seconds)
    try:
        if not await store.postgres_ok():
            log.warning("postgres not reachable at start; serving what the caches can")
        await store.start()
        app[KEYSTORE] = store
        app[METRICS].bind_keystore(store)
        yield
    finally:
        app[METRICS].bind_keystore(None)
        await store.close()
        await main.aclose()
        await feed.aclose()
        await pool.close()


async def start_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    """Mark the instance started once every dependency has been up (after storage_ctx: it needs the keystore)."""
    task = asyncio.create_task(watch_start(app[LIFECYCLE], app[KEYSTORE]), name="start-watch")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def upstream_http_ctx(app: web.Application) -> AsyncIterator[None]:
    up = app[CONFIG].upstream
    connector = aiohttp.TCPConnector(limit=up.max_connections, limit_per_host=up.max_connections_per_host,
                                     ttl_dns_cache=300)
    # No total timeout: a long generation is legitimate. First byte and idle gaps are bounded per
    # request in gateway/relay.py; connecting is bounded here.
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=up.connect_timeout_seconds,
                                    sock_read=None)
    # No cookie jar: one session serves every client, so a provider's Set-Cookie must never come back
    # on a later request (a header on no allow-list, and one client's state in another's request).
    session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                    skip_auto_headers=("User-Agent", "Accept-Encoding"),
                                    cookie_jar=aiohttp.DummyCookieJar())
    app[UPSTREAM_HTTP] = session
    try:
        yield
    finally:
        await session.close()
