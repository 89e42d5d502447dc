"""A flood of wrong secrets for one real key id: argon2 work stays bounded, the flooding client gets
429 (rate_limit_error, Retry-After), other keys and the same key from another address keep working."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support import forged
from tests.support.faults import CHAT, GUARD, Client, Cluster, metric, scrape

THRESHOLD = 5
ROUNDS, CONCURRENCY = 10, 8
BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}


async def post(session: aiohttp.ClientSession, url: str, key: str) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(GUARD):
        async with session.post(url, json=BODY, headers={"Authorization": f"Bearer {key}"}) as r:
            return r.status, dict(r.headers), await r.read()


async def test_wrong_secret_flood_is_bounded_and_scoped_to_the_flooding_client(
        cluster: Cluster, client: Client) -> None:
    proc = await cluster.start(keystore={"failure_threshold": THRESHOLD, "failure_window_seconds": 60.0})
    victim, victim_id = await client.issue(proc, "victim")
    bystander, _ = await client.issue(proc, "bystander")
    before = metric(await scrape(proc), "tokenhub_argon2_verifications_total")
    flood: list[tuple[int, dict[str, str], bytes]] = []
    for _ in range(ROUNDS):  # 80 different wrong secrets for the victim's key id, from 127.0.0.1
        flood += await asyncio.gather(*(post(client.session, proc.url(CHAT), forged(victim_id))
                                        for _ in range(CONCURRENCY)))
        assert (await client.chat(proc, bystander)).status == 200  # other keys are served throughout
    statuses = [s for s, _, _ in flood]
    assert set(statuses) == {401, 429} and statuses[-1] == 429
    _, headers, body = next(f for f in flood if f[0] == 429)
    assert headers["Retry-After"].isdigit() and b'"rate_limit_error"' in body
    spent = metric(await scrape(proc), "tokenhub_argon2_verifications_total") - before
    assert spent <= THRESHOLD + CONCURRENCY + 1  # not one per attempt (80); +1: the bystander
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as elsewhere:  # the rightful holder
        assert (await post(elsewhere, proc.url(CHAT), victim))[0] == 200
    assert (await post(client.session, proc.url(CHAT), forged(victim_id)))[0] == 429  # still limited
