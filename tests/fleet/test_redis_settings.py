"""`[redis]` and `[postgres]` fleet settings: checked at load, and turned into redis-py's own clients
(plain, Sentinel's master_for, RedisCluster) with TLS, the ACL user and the passwords from the env."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import RedisError

from proxy.config import ConfigError, PostgresConfig
from proxy.config_loader import load_config
from proxy.runtime.resources import Cluster, ClusterFeed, SentinelFeed, pool_options, redis_clients
from tests.support.procs import free_port

SENTINEL = {"TOKENHUB_REDIS__MODE": "sentinel", "TOKENHUB_REDIS__SENTINELS": "s1:26379,s2:26379",
            "TOKENHUB_REDIS__MASTER_NAME": "tokenhub"}


@pytest.mark.parametrize(("env", "problem"), [
    ({"TOKENHUB_REDIS__MODE": "sentinal"}, "mode must be one of standalone, sentinel, cluster"),
    ({"TOKENHUB_REDIS__MODE": "sentinel"}, "sentinel mode needs sentinels and master_name"),
    (SENTINEL | {"TOKENHUB_REDIS__SENTINELS": "s1"}, "sentinels: 's1' is not host:port"),
    ({"TOKENHUB_REDIS__PASSWORD_ENV": "RP"}, "[redis] password_env: environment variable RP is not set"),
    ({"TOKENHUB_REDIS__SENTINEL_PASSWORD_ENV": "SP"}, "[redis] sentinel_password_env: environment variable SP"),
    ({"TOKENHUB_REDIS__URL": "http://x"}, "url must be a redis:// or rediss:// URL"),
    ({"TOKENHUB_POSTGRES__PGBOUNCER": "maybe"}, "[postgres] pgbouncer: expected true or false"),
])
def test_bad_fleet_settings_are_reported(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, env)
    assert any(problem in p for p in err.value.problems), err.value.problems


async def test_standalone_over_tls_with_an_acl_user() -> None:
    config = load_config(None, {"TOKENHUB_REDIS__URL": "rediss://cache.example:6380/2", "RP": "s3cret",
                                "TOKENHUB_REDIS__USERNAME": "tokenhub", "TOKENHUB_REDIS__PASSWORD_ENV": "RP"})
    main, feed = redis_clients(config)
    for client in (main, feed):
        assert isinstance(client, Redis)
        kw = client.connection_pool.connection_kwargs
        assert client.connection_pool.connection_class is SSLConnection
        assert (kw["host"], kw["port"], kw["db"], kw["username"], kw["password"]) == (
            "cache.example", 6380, 2, "tokenhub", "s3cret")
    assert main.connection_pool.connection_kwargs["socket_timeout"] == config.redis.timeout_seconds
    assert feed.connection_pool.connection_kwargs["socket_timeout"] is None  # PINGed instead
    assert "s3cret" not in repr(config)
    await main.aclose()
    await feed.aclose()


async def test_sentinel_mode_follows_the_sentinels() -> None:
    config = load_config(None, SENTINEL | {"TOKENHUB_REDIS__URL": "rediss://ignored/3", "RP": "pw", "SP": "spw",
                                           "TOKENHUB_REDIS__PASSWORD_ENV": "RP",
                                           "TOKENHUB_REDIS__SENTINEL_PASSWORD_ENV": "SP"})
    main, feed = redis_clients(config)
    assert isinstance(main, Redis) and isinstance(feed, SentinelFeed)
    for pool in (main.connection_pool, feed.pubsub().connection_pool):
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "tokenhub"
        assert pool.connection_kwargs["password"] == "pw" and pool.connection_kwargs["db"] == 3
        sentinels = pool.sentinel_manager.sentinels
        assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                for s in sentinels] == [("s1", 26379), ("s2", 26379)]
        assert all(s.connection_pool.connection_kwargs["password"] == "spw" for s in sentinels)
        assert all(s.connection_pool.connection_class is SSLConnection for s in sentinels)
    await main.aclose()
    await feed.aclose()


async def test_cluster_mode_uses_the_cluster_client() -> None:
    config = load_config(None, {"TOKENHUB_REDIS__MODE": "cluster", "TOKENHUB_REDIS__URL": "redis://node:7000/0"})
    main, feed = redis_clients(config)
    assert isinstance(main, Cluster) and isinstance(feed, ClusterFeed)
    await main.aclose()


def test_pgbouncer_turns_off_the_statement_cache() -> None:
    assert pool_options(PostgresConfig(pgbouncer=True)) == {"statement_cache_size": 0}
    assert pool_options(PostgresConfig()) == {}


async def test_an_unreachable_cluster_fails_like_any_redis() -> None:
    """redis-py raises RedisClusterException (not a RedisError) when no node answers; every caller
    treats Redis failures as RedisError and falls back to Postgres, so the client translates it."""
    port = free_port()  # nothing listens there: connections are refused
    config = load_config(None, {"TOKENHUB_REDIS__MODE": "cluster", "TOKENHUB_REDIS__URL": f"redis://127.0.0.1:{port}/0"})
    main, _ = redis_clients(config)
    try:
        with pytest.raises(RedisError):
            await main.get("k")
        pipe = main.pipeline(transaction=False)
        pipe.rpush("k", "v")
        with pytest.raises(RedisError):
            await pipe.execute()
    finally:
        await main.aclose()
