"""Migrations: plain SQL, idempotent, safe when several instances run them at the same moment."""

import asyncio
import uuid

import asyncpg

from keystore import migrate

from tests.support import PG_OPTIONS


async def test_concurrent_migrations_apply_once(database_url, migrated) -> None:
    # A database of its own, not a schema picked by search_path: a session setting that PgBouncer in
    # transaction mode cannot carry (tests/fleet runs this module through it).
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url, **PG_OPTIONS)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url.rsplit("/", 1)[0] + f"/{name}"
    pools = [await asyncpg.create_pool(url, min_size=1, max_size=1, **PG_OPTIONS) for _ in range(5)]
    try:
        results = await asyncio.gather(*(migrate(p) for p in pools))
        assert sorted(len(r) for r in results) == [0, 0, 0, 0, len(results[0]) or max(map(len, results))]
        assert sum(len(r) for r in results) >= 1
        again = await migrate(pools[0])
        assert again == []
        tables = {r[0] for r in await pools[0].fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"api_keys", "key_changes", "audit_log", "tokenhub_migrations"} <= tables
    finally:
        for p in pools:
            await p.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
