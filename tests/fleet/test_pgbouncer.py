"""PgBouncer in transaction mode in front of Postgres: the whole keystore test module passes through
it, and `tokenhub migrate` and `tokenhub serve` with `[postgres] pgbouncer = true` work through it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.fleet import admin, chat, fleet_config, need
from tests.support.fleet_services import PGBOUNCER, Bouncer, pgbouncer, scratch_dir
from tests.support.procs import run_migrate, serving

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


def _show(bouncer: Bouncer, what: str) -> list[dict[str, str]]:
    """`SHOW <what>` on PgBouncer's admin console (psql: the console speaks only the simple protocol)."""
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(bouncer.port), "-U", "postgres", "--csv",
                           "pgbouncer", "-c", f"SHOW {what}"],
                          capture_output=True, text=True, timeout=30, check=True)
    header, *rows = done.stdout.strip().splitlines()
    names = header.split(",")
    return [dict(zip(names, row.split(","), strict=False)) for row in rows]


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.mark.timeout(400)  # the whole keystore module runs inside this test (2 min on a busy 2-core box)
def test_the_keystore_test_module_passes_through_pgbouncer(database_url: str, redis_url: str) -> None:
    need(PGBOUNCER, "psql")
    with scratch_dir("bouncer") as d, pgbouncer(d, database_url) as bouncer:
        env = dict(os.environ, TEST_DATABASE_URL=bouncer.url(_database(database_url)), TEST_PGBOUNCER="1",
                   TEST_REDIS_URL=redis_url)
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/keystore", "-q", "-x", "-p", "no:cacheprovider",
                               "-o", "addopts=--strict-markers --strict-config -ra"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=380, check=False)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
        stats = {row["database"]: row for row in _show(bouncer, "STATS")}
        # The run really went through the bouncer: thousands of transactions on the test database.
        assert int(stats[_database(database_url)]["total_xact_count"]) > 500, stats


async def test_migrate_and_serve_through_pgbouncer(tmp_path: Path, database_url: str, redis_url: str,
                                                   namespace: str, demo_url: str) -> None:
    need(PGBOUNCER)
    with scratch_dir("bouncer") as d, pgbouncer(d, database_url, pool_size=2) as bouncer:
        config = fleet_config(tmp_path, "bouncer.toml", database_url=bouncer.url(_database(database_url)),
                              redis={"url": redis_url}, namespace=namespace, demo_url=demo_url,
                              postgres={"pgbouncer": True})
        run_migrate(config)
        async with serving(config) as proc, aiohttp.ClientSession() as http:
            # More clients than the bouncer's two server connections: statements interleave across them.
            created = [await admin(http, proc, "POST", "/admin/keys", {"name": f"k{i}"}) for i in range(6)]
            assert await asyncio.gather(*(chat(http, proc, k["key"]) for k in created * 3)) == [200] * 18
            await admin(http, proc, "POST", f"/admin/keys/{created[0]['id']}/revoke")
            assert await chat(http, proc, created[0]["key"]) == 401
            assert "prepared statement" not in proc.log()
