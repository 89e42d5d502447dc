"""The revocation feed's source on a Redis Cluster (proxy/runtime/resources.py `ClusterFeed`), against
three real cluster nodes: before the topology is known a subscription fails as a RedisError (the feed
loop retries), a PUBLISH through the cluster client reaches a subscriber on any node, and after the
subscribed node dies the next subscription lands on a live node."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from proxy.config import Config, RedisConfig
from proxy.runtime.resources import ClusterFeed, redis_clients
from tests.support.fleet import need
from tests.support.fleet_services import redis_cluster

pytestmark = pytest.mark.slow


async def _delivered(feed: ClusterFeed, cluster: object, channel: str) -> tuple[int, bytes]:
    """Subscribe through `feed`, publish through the cluster client; (the subscribed port, the message)."""
    ps = feed.pubsub()
    try:
        await ps.subscribe(channel)
        assert (await ps.get_message(timeout=5))["type"] == "subscribe"  # type: ignore[index]
        await cluster.publish(channel, b"revoked")  # type: ignore[attr-defined]
        msg = await ps.get_message(timeout=5)
        assert msg is not None and msg["type"] == "message", msg
        return int(ps.connection.port), msg["data"]  # type: ignore[union-attr]
    finally:
        await ps.aclose()  # type: ignore[no-untyped-call]


async def test_cluster_feed_subscribes_on_a_live_node(tmp_path: Path) -> None:
    need("redis-server", "redis-cli")
    with redis_cluster(tmp_path) as nodes:
        config = Config(redis=RedisConfig(mode="cluster", url=nodes[0].url, timeout_seconds=1.0))
        cluster, feed = redis_clients(config)
        assert isinstance(feed, ClusterFeed)
        try:
            with pytest.raises(RedisError):  # nothing has reached the cluster yet: a lost feed, retried
                await feed.pubsub().subscribe("ch")
            seen = {(await _delivered(feed, cluster, "ch"))[0] for _ in range(3)}
            assert len(seen) > 1  # successive subscriptions move round the nodes
            port, data = await _delivered(feed, cluster, "ch")
            assert data == b"revoked"
            dead = next(n for n in nodes if n.port == port)
            dead.kill(signal.SIGKILL)
            answers = [await _maybe(feed, cluster) for _ in range(len(nodes))]
            assert b"revoked" in answers  # the feed found a live node within one round
            assert all(a in (b"revoked", None) for a in answers)
        finally:
            await cluster.aclose()


async def _maybe(feed: ClusterFeed, cluster: object) -> bytes | None:
    try:
        return (await _delivered(feed, cluster, "ch"))[1]
    except RedisError:
        return None  # that attempt chose the dead node: the feed loop would retry, as here
