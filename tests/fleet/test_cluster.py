"""Redis Cluster: three masters (`redis-server --cluster-enabled yes`, joined with `redis-cli --cluster
create`) under two `tokenhub serve` instances. Keys are created, used and revoked across both; one
master is restarted; everything keeps working and the feed comes back on both instances."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.fleet import (
    Traffic,
    admin,
    chat,
    confirmed_by_both,
    decided,
    feed_up,
    fleet_config,
    need,
    refused_as_answered,
    server_error_report,
    until,
)
from tests.support.fleet_services import redis_cli, redis_cluster, wait_cluster_ok
from tests.support.procs import run_migrate, serving

pytestmark = pytest.mark.slow


async def _both(http: aiohttp.ClientSession, a: object, b: object, key: str) -> list[int]:
    return [await chat(http, p, key) for p in (a, b)]  # type: ignore[arg-type]


async def _feeds(http: aiohttp.ClientSession, *procs: object) -> bool:
    return all([await feed_up(http, p) for p in procs])  # type: ignore[arg-type]


async def test_cluster_of_three_masters(tmp_path: Path, database_url: str, migrated: None, namespace: str,
                                        demo_url: str) -> None:
    need("redis-server", "redis-cli")
    with redis_cluster(tmp_path) as nodes:
        # A read timeout for a machine shared with other test runs: here the limiter must decide in the
        # cluster, not fall back to its per-instance share because a call took longer than 0.25 s.
        redis = {"mode": "cluster", "url": nodes[0].url, "timeout_seconds": 1.0}
        configs = [fleet_config(tmp_path, f"{n}.toml", database_url=database_url, redis=redis, namespace=namespace,
                                demo_url=demo_url) for n in ("a", "b")]
        run_migrate(configs[0])
        async with serving(configs[0]) as a, serving(configs[1]) as b, aiohttp.ClientSession() as http:
            await until(lambda: _feeds(http, a, b), "both feeds up")
            keys = [await admin(http, a, "POST", "/admin/keys", {"name": f"k{i}"}) for i in range(12)]
            for k in keys:
                assert await _both(http, a, b, k["key"]) == [200, 200]
            # The records are spread over the masters (each one in its own key's slot).
            per_node = [int(redis_cli(n.port, "DBSIZE")) for n in nodes]
            assert all(count > 0 for count in per_node), per_node

            revoked = await admin(http, b, "POST", f"/admin/keys/{keys[0]['id']}/revoke")
            assert revoked["propagation"]["confirmed"] == 2
            assert await _both(http, a, b, keys[0]["key"]) == [401, 401]

            traffic = Traffic(http, [a, b], keys[1]["key"]).start()
            try:
                # Restart a master that holds a revocation feed (same port and nodes.conf: it rejoins).
                restarted = next(n for n in nodes if redis_cli(n.port, "CLIENT", "LIST", "TYPE", "pubsub"))
                restarted.kill(signal.SIGTERM)
                answer = await admin(http, a, "POST", f"/admin/keys/{keys[2]['id']}/revoke")  # while it is down
                await refused_as_answered(http, a, b, keys[2]["key"], answer)
                restarted.start()
                await asyncio.to_thread(wait_cluster_ok, nodes)
                await until(lambda: _feeds(http, a, b), "both feeds up after the restart")
                moved = [p for p in (a, b) if "revocation feed lost" in p.log()]
                assert moved and all(p.log().count("revocation feed subscribed") >= 2 for p in moved)  # + a flush
                for k in keys[3:]:
                    assert await _both(http, a, b, k["key"]) == [200, 200]
                await admin(http, a, "POST", f"/admin/keys/{keys[3]['id']}/revoke")
                assert await _both(http, a, b, keys[3]["key"]) == [401, 401]
                # As in test_sentinel: after the restart, a revoke is confirmed by both instances once both
                # heartbeats are back (one sent right after it may honestly count fewer).
                await until(lambda: confirmed_by_both(http, a, b), "a revoke confirmed by both instances")
            finally:
                await traffic.stop()  # also when an assertion failed: no client task outlives the session
            limited = await _rate_limited_across_both(http, a, b)
            # Decided by the shared bucket on the cluster (its keys are there, and Redis decided).
            pattern = f"{namespace}:lim:{{{limited}}}*"
            assert any(redis_cli(n.port, "KEYS", pattern) for n in nodes), pattern
            assert [await decided(http, p, "local") for p in (a, b)] == [0, 0]  # none by a fallback share
            assert sum([await decided(http, p, "redis") for p in (a, b)]) >= 16
        assert traffic.server_errors == 0, server_error_report(traffic, a, b)


async def _rate_limited_across_both(http: aiohttp.ClientSession, a: object, b: object) -> str:
    """One bucket for the fleet, kept on the cluster: README's bound, limit + limit·t/60 admitted."""
    limit = 6
    key = await admin(http, a, "POST", "/admin/keys", {"name": "limited",  # type: ignore[arg-type]
                                                        "limits": {"requests_per_minute": limit}})
    t0 = time.monotonic()
    statuses = [await chat(http, (a, b)[i % 2], key["key"]) for i in range(16)]  # type: ignore[arg-type]
    bound = limit + int(limit * (time.monotonic() - t0) / 60)
    assert set(statuses) == {200, 429}, statuses
    assert limit <= statuses.count(200) <= bound, statuses
    return str(key["id"])
