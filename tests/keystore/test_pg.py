"""Migrations: plain SQL, idempotent, safe when several instances run them at the same moment."""

import asyncio
import uuid

import asyncpg

from keystore import migrate


async def test_concurrent_migrations_apply_once(database_url, migrated) -> None:
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=1,
                                       server_settings={"search_path": schema}) for _ in range(5)]
    try:
        results = await asyncio.gather(*(migrate(p) for p in pools))
        assert sorted(len(r) for r in results) == [0, 0, 0, 0, len(results[0]) or max(map(len, results))]
        assert sum(len(r) for r in results) >= 1
        again = await migrate(pools[0])
        assert again == []
        tables = {r[0] for r in await admin.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}
        assert {"api_keys", "key_changes", "audit_log", "tokenhub_migrations"} <= tables
    finally:
        for p in pools:
            await p.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
