"""Postgres and Redis stopped under real `tokenhub serve` processes (each behind a TcpGate the test cuts:
connections refused, open ones aborted), then restored: SPEC §4.5 and the README's degraded modes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from keystore import names

from tests.support import TcpGate
from tests.support.faults import GUARD, Client, Cluster, metric, scrape
from tests.support.procs import ServeProcess


async def until(check: Any, timeout: float = GUARD) -> None:
    """Poll an async check until truthy (a guard against hanging, not a timing assertion)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def readiness(client: Client, proc: ServeProcess) -> tuple[int, str]:
    answer = await client.call("GET", proc.url("/readyz"))
    return answer.status, answer.json()["status"]


async def load(client: Client, proc: ServeProcess, keys: list[str], rounds: int = 5) -> list[int]:
    statuses: list[int] = []
    for _ in range(rounds):  # each request is bounded by the client's GUARD: none may hang
        statuses += [a.status for a in await asyncio.gather(*(client.chat(proc, k) for k in keys * 4))]
    return statuses


async def test_redis_stopped_under_load(cluster: Cluster, client: Client, redis_gate: TcpGate) -> None:
    edge = await cluster.start(redis=redis_gate)  # this instance loses Redis
    other = await cluster.start()  # this one keeps it
    (warm, _), (cold, _), (doomed, doomed_id) = [await client.issue(other, n) for n in ("warm", "cold", "doomed")]
    for proc in (edge, other):
        assert [(await client.chat(proc, k)).status for k in (warm, doomed)] == [200, 200]
    await until(lambda: readiness_is(client, edge, "ready"))
    redis_gate.cut()
    assert set(await load(client, edge, [warm, cold, doomed])) == {200}  # cold: straight from Postgres
    assert (await readiness(client, edge)) == (200, "degraded")
    revoked = await client.call("POST", edge.admin_url(f"/admin/keys/{doomed_id}/revoke"), admin=True)
    assert revoked.status == 200 and revoked.json()["status"] == "revoked"  # committed without Redis
    assert (await client.chat(edge, doomed)).status == 401  # never served after the revoke returned
    await until(lambda: status_is(client, other, doomed, 401))  # the Postgres backstop carries it
    assert set(await load(client, edge, [warm, cold])) == {200}
    flushes = metric(await scrape(edge), "tokenhub_revocation_flushes_total")
    redis_gate.restore()
    await until(lambda: readiness_is(client, edge, "ready"))  # the subscription is back
    assert metric(await scrape(edge), "tokenhub_revocation_flushes_total") > flushes  # and caches flushed
    assert [(await client.chat(edge, k)).status for k in (warm, cold, doomed)] == [200, 200, 401]


async def readiness_is(client: Client, proc: ServeProcess, status: str) -> bool:
    return (await readiness(client, proc))[1] == status


async def status_is(client: Client, proc: ServeProcess, key: str, status: int) -> bool:
    return (await client.chat(proc, key)).status == status


async def test_postgres_stopped_keeps_recent_keys_and_503s_the_rest(
        cluster: Cluster, client: Client, pg_gate: TcpGate) -> None:
    proc = await cluster.start(pg=pg_gate, keystore={"cache_ttl_seconds": 0.5})
    (recent, _), (cold, _) = await client.issue(proc, "recent"), await client.issue(proc, "cold")
    assert (await client.chat(proc, recent)).status == 200
    await until(lambda: readiness_is(client, proc, "ready"))  # as the load balancer saw it
    pg_gate.cut()
    await asyncio.sleep(1)  # past the cache TTL: the re-check fails, pg_down_grace keeps the key working
    assert (await client.chat(proc, recent)).status == 200
    answer = await client.chat(proc, cold)  # never verified here: cannot be checked
    assert answer.status == 503 and answer.error["type"] == "api_error" and "Retry-After" in answer.headers
    admin = await client.call("GET", proc.admin_url("/admin/keys"), admin=True)
    assert admin.status == 503 and admin.error["type"] == "api_error"
    assert (await readiness(client, proc)) == (200, "degraded")
    pg_gate.restore()
    await until(lambda: status_is(client, proc, cold, 200))  # full service, no restart
    assert (await client.call("GET", proc.admin_url("/admin/keys"), admin=True)).status == 200
    assert (await readiness(client, proc)) == (200, "ready")


async def test_postgres_stopped_beyond_the_grace_and_without_a_redis_record_is_503(
        cluster: Cluster, client: Client, pg_gate: TcpGate, redis: Redis, namespace: str) -> None:
    proc = await cluster.start(pg=pg_gate, keystore={"cache_ttl_seconds": 0.5, "pg_down_grace_seconds": 1.0})
    key, key_id = await client.issue(proc, "old")
    assert (await client.chat(proc, key)).status == 200
    pg_gate.cut()
    await asyncio.sleep(1.5)  # past the grace: only the Redis record still vouches for the key
    assert (await client.chat(proc, key)).status == 200
    assert await redis.delete(names.record(namespace, key_id)) == 1  # that record expires
    await asyncio.sleep(1.5)  # the grace since the last confirmation runs out too
    answer = await client.chat(proc, key)
    assert answer.status == 503 and answer.error["type"] == "api_error"  # never a 401, never a 200
    pg_gate.restore()
    await until(lambda: status_is(client, proc, key, 200))


@pytest.mark.parametrize("cut", ["postgres", "redis"])
async def test_revoked_key_is_never_served_during_an_outage(cut: str, cluster: Cluster, client: Client,
                                                            pg_gate: TcpGate, redis_gate: TcpGate) -> None:
    proc = await cluster.start(pg=pg_gate, redis=redis_gate, keystore={"cache_ttl_seconds": 0.5})
    key, key_id = await client.issue(proc, "revoked-before")
    assert (await client.chat(proc, key)).status == 200
    assert (await client.call("POST", proc.admin_url(f"/admin/keys/{key_id}/revoke"), admin=True)).status == 200
    (pg_gate if cut == "postgres" else redis_gate).cut()
    await asyncio.sleep(1)
    statuses = {(await client.chat(proc, key)).status for _ in range(5)}
    assert statuses == {401}


async def test_redis_frozen_no_request_hangs_and_revokes_still_land(
        cluster: Cluster, client: Client, redis_gate: TcpGate) -> None:
    edge = await cluster.start(redis=redis_gate)  # its Redis hangs: connections open, no answers
    other = await cluster.start()
    (warm, _), (cold, _), (doomed, doomed_id) = [await client.issue(other, n) for n in ("warm", "cold", "doomed")]
    assert [(await client.chat(edge, k)).status for k in (warm, doomed)] == [200, 200]
    await until(lambda: readiness_is(client, edge, "ready"))  # as the load balancer saw it
    redis_gate.frozen = True
    assert set(await load(client, edge, [warm, cold, doomed])) == {200}  # short Redis timeouts, then Postgres
    assert (await readiness(client, edge)) == (200, "degraded")  # the freeze is real
    revoked = await client.call("POST", other.admin_url(f"/admin/keys/{doomed_id}/revoke"), admin=True)
    assert revoked.status == 200
    await until(lambda: status_is(client, edge, doomed, 401))  # PING finds the dead feed; stale bound
    assert set(await load(client, edge, [warm, cold], rounds=2)) == {200}
    redis_gate.thaw()
    await until(lambda: readiness_is(client, edge, "ready"))
    assert [(await client.chat(edge, k)).status for k in (warm, cold, doomed)] == [200, 200, 401]
