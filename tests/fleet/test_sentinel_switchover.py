"""A planned Sentinel failover (`SENTINEL FAILOVER`: the primary is demoted, not killed) through the clients
`[redis] mode = "sentinel"` builds: the feed's subscription on the old primary is cut (so the keystore
resubscribes and flushes, as after any lost feed), and both clients then work on the new primary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from proxy.config_loader import load_config
from proxy.runtime.resources import redis_clients
from tests.support.fleet import need, until
from tests.support.fleet_services import redis_cli, sentinel_set

pytestmark = pytest.mark.slow


async def test_a_demoted_primary_cuts_the_feed_and_the_clients_follow(tmp_path: Path) -> None:
    need("redis-server", "redis-sentinel")
    with sentinel_set(tmp_path) as s:
        config = load_config(None, {"TOKENHUB_REDIS__MODE": "sentinel", "TOKENHUB_REDIS__MASTER_NAME": s.master_name,
                                    "TOKENHUB_REDIS__SENTINELS": ",".join(s.addresses),
                                    "TOKENHUB_REDIS__TIMEOUT_SECONDS": "1.0"})
        main, feed = redis_clients(config)
        ps = feed.pubsub()
        try:
            await ps.subscribe("ch")
            assert (await ps.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
            await main.set("k", "before")
            assert redis_cli(s.ports[0], "SENTINEL", "FAILOVER", s.master_name) == "OK"
            await until(lambda: asyncio.to_thread(lambda: s.master_port() == s.replica.port),
                             "the replica promoted")
            with pytest.raises((RedisError, OSError)):  # the old primary's subscribers are disconnected
                for _ in range(50):
                    await ps.get_message(timeout=0.2)
                    await ps.ping()
            await ps.aclose()  # type: ignore[no-untyped-call]

            async def writes() -> bool:
                # Until the sentinels have turned the old primary into a replica it still takes writes
                # (Redis' own window, lost with it): the command client ends up on the new primary.
                try:
                    await main.set("k", "after")
                except RedisError:
                    return False
                return await asyncio.to_thread(redis_cli, s.replica.port, "GET", "k") == "after"
            await until(writes, "a write on the new primary")
            ps = feed.pubsub()  # what the feed loop does next: subscribe again (and flush)
            await ps.subscribe("ch")
            assert (await ps.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
            assert int(ps.connection.port) == s.replica.port  # type: ignore[union-attr]
            await main.publish("ch", "revoked")
            msg = await ps.get_message(timeout=5)
            assert msg is not None and msg["data"] == b"revoked"
        finally:
            await ps.aclose()  # type: ignore[no-untyped-call]
            await main.aclose()
            await feed.aclose()
