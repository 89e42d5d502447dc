"""The Redis clients the keystore accepts: redis-py's plain client (standalone, or Sentinel's
`master_for`) or its cluster client, and the source its revocation feed subscribes through."""

from __future__ import annotations

from typing import Protocol, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

RedisClient: TypeAlias = Redis | RedisCluster


class PubSubSource(Protocol):
    """A plain client, or on a cluster the node the feed subscribes on next (proxy/runtime/resources.py)."""

    def pubsub(self) -> PubSub: ...
