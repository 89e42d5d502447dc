"""Postgres failover: the DSN names a primary and its streaming replica with
`target_session_attrs=read-write`; the primary stops, the replica is promoted, the proxy follows."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.fleet import admin, chat, fleet_config, need, until
from tests.support.fleet_services import PG_BIN, postgres_pair, scratch_dir
from tests.support.procs import run_migrate, serving

pytestmark = pytest.mark.slow


async def test_the_proxy_follows_a_promoted_replica(tmp_path: Path, redis_url: str, namespace: str,
                                                    demo_url: str) -> None:
    need(str(PG_BIN / "initdb"), str(PG_BIN / "pg_basebackup"))
    with scratch_dir("pg") as d, postgres_pair(d) as (primary, replica):
        dsn = (f"postgresql://postgres@{primary.address},{replica.address}/postgres"
               "?target_session_attrs=read-write")
        config = fleet_config(tmp_path, "pg.toml", database_url=dsn, redis={"url": redis_url},
                              namespace=namespace, demo_url=demo_url)
        run_migrate(config)  # reaches the primary: the replica is read-only and skipped
        async with serving(config) as proc, aiohttp.ClientSession() as http:
            warm = await admin(http, proc, "POST", "/admin/keys", {"name": "warm"})
            cold = await admin(http, proc, "POST", "/admin/keys", {"name": "never used before the failover"})
            assert await chat(http, proc, warm["key"]) == 200

            primary.stop("immediate")
            assert await chat(http, proc, warm["key"]) == 200  # verified recently: served without Postgres
            replica.promote()

            async def writes_again() -> bool:
                async with http.post(proc.admin_url("/admin/keys"), json={"name": "after"},
                                     headers={"Authorization": f"Bearer {proc.admin_token}"}) as r:
                    return r.status == 201
            await until(writes_again, "a write on the promoted replica")
            # Read from the promoted replica on a cold path: the key was replicated before the failover.
            assert await chat(http, proc, cold["key"]) == 200
            await admin(http, proc, "POST", f"/admin/keys/{warm['id']}/revoke")
            assert await chat(http, proc, warm["key"]) == 401
