"""Secret hygiene, run last: every key issued during the suite is looked for in every captured log line
(serve processes' output, in-process records), error body, /metrics scrape and audit row. Zero hits.

This module also makes traffic of its own that tempts a leak, so it is meaningful when run alone."""

from __future__ import annotations

import asyncpg

from tests.support import forged
from tests.support.faults import CHAT, Client, Cluster, Hygiene, raw_request, scrape, status_of


async def tempt(cluster: Cluster, client: Client, hygiene: Hygiene) -> None:
    proc = await cluster.start()
    key, key_id = await client.issue(proc, "tempting")
    for line in (f"Authorization Bearer {key}", f"X-Api-Key: {key}\x7f", f"Authorization: Bearer {key}\x00"):
        answer = await raw_request(proc.port, f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{line}\r\n\r\n".encode())
        client.record("raw tempt", answer)
        assert status_of(answer) == 400
    await client.call("POST", proc.url(f"{CHAT}?api_key={key}"), json={"model": "demo/echo"})
    await client.call("POST", proc.url(CHAT), key=key[:-1] + "x", json={"model": "demo/echo"})
    await client.call("POST", proc.url(CHAT), key=forged(key_id), json={"model": "demo/echo"})
    await client.call("POST", proc.url(CHAT), headers={"x-api-key": key, "api-key": forged(key_id)})
    rotated = await client.call("POST", proc.admin_url(f"/admin/keys/{key_id}/rotate"), admin=True, json={})
    hygiene.keys.add(rotated.json()["key"])
    await client.chat(proc, rotated.json()["key"])
    client.record("metrics", (await scrape(proc)).encode())


async def audit_rows(database_url: str) -> str:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await conn.fetch("SELECT * FROM audit_log")
    finally:
        await conn.close()
    return "\n".join(repr(dict(r)) for r in rows)


async def test_no_key_in_any_log_body_metric_or_audit_row(cluster: Cluster, client: Client, hygiene: Hygiene,
                                                          database_url: str) -> None:
    await tempt(cluster, client, hygiene)
    for proc in cluster.procs:
        await proc.stop()  # its log is complete
    hygiene.add("audit_log", await audit_rows(database_url))
    assert hygiene.keys and hygiene.logs and len(hygiene.texts) > 5
    assert hygiene.leaks() == []
