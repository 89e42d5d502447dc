"""Every Redis key and channel name the keystore uses, built here and nowhere else.

One module so that a topology change (Redis Cluster hash tags such as `<ns>:key:{<id>}`) is made
in one place: the fleet helper may change these functions and the Redis client construction.
"""

from __future__ import annotations


def record(namespace: str, key_id: str) -> str:
    """The cached record of one key.

    The key id is the Redis Cluster hash tag (`{...}`): everything kept about one key (this record and
    the limiter's counters, `<ns>:lim:{<id>}...`) lives in one slot, so a script may touch any of it.
    """
    return f"{namespace}:key:{{{key_id}}}"


def revocations(namespace: str) -> str:
    """The pub/sub channel of key changes."""
    return f"{namespace}:revocations"


def instances(namespace: str) -> str:
    """The sorted set of live instances, scored by Redis' own clock."""
    return f"{namespace}:instances"


def acks(namespace: str, rev: str) -> str:
    """The list where instances acknowledge one published change."""
    return f"{namespace}:ack:{rev}"
