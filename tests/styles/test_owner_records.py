"""keystore.ResponseOwners against the real Postgres: first record wins, old records are forgotten."""

from __future__ import annotations

import asyncpg

from keystore import ResponseOwner, ResponseOwners

A = ResponseOwner("resp_a", "key1", "oai", "oai/gpt-5")


async def test_the_first_record_of_an_id_stands(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE response_owners")
    owners = ResponseOwners(pool)
    assert await owners.remember(A) is True
    assert await owners.remember(ResponseOwner("resp_a", "key2", "oai", "oai/gpt-5")) is False
    assert await owners.find("resp_a") == A
    assert await owners.find("resp_unknown") is None


async def test_records_past_their_life_are_forgotten(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE response_owners")
    owners = ResponseOwners(pool)
    for rid in ("resp_old1", "resp_old2", "resp_new"):
        await owners.remember(ResponseOwner(rid, "key1", "oai", "oai/gpt-5"))
    await pool.execute("UPDATE response_owners SET created_at = now() - interval '50 days' WHERE response_id LIKE"
                       " 'resp_old%'")
    assert await owners.forget_older_than(45, batch=1) == 1
    assert await owners.forget_older_than(45) == 1
    assert await owners.forget_older_than(45) == 0
    assert [await owners.find(r) is not None for r in ("resp_old1", "resp_old2", "resp_new")] == [False, False, True]
