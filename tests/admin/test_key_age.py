"""Each key's age in `tokenhub keys list`, flagged past `[keystore] rotation_reminder_days` (default
90), and the reminder in the list answer for the page and scripts."""

from __future__ import annotations

import asyncpg

from tests.admin.test_cli import tokenhub, url  # noqa: F401  (the `url` fixture)
from tests.support.admin import AdminStack


async def aged(pool: asyncpg.Pool, key_id: str, days: int) -> None:
    await pool.execute(f"UPDATE api_keys SET created_at = now() - interval '{days} days' WHERE id = $1", key_id)


async def test_list_shows_age_and_flags_keys_due_for_rotation(url: str, pool: asyncpg.Pool,  # noqa: F811
                                                              admin_stack: AdminStack) -> None:
    ids = {}
    for name in ("fresh", "old", "old-revoked"):
        ids[name] = (await tokenhub("create", "--name", name, "--json", url=url)).json()["id"]
    await aged(pool, ids["old"], 120)
    await aged(pool, ids["old-revoked"], 120)
    await tokenhub("revoke", ids["old-revoked"], url=url)
    listed = (await tokenhub("list", "--json", url=url)).json()
    assert listed["rotation_reminder_days"] == 90
    done = await tokenhub("list", url=url)
    assert done.code == 0 and "AGE" in done.out.splitlines()[0]
    rows = {line.split()[0]: line for line in done.out.splitlines()[1:] if line.strip()}
    assert "120d ROTATE" in rows[ids["old"]]
    assert " 0d " in rows[ids["fresh"]] and "ROTATE" not in rows[ids["fresh"]]
    assert "120d" in rows[ids["old-revoked"]] and "ROTATE" not in rows[ids["old-revoked"]]
    assert "rotation_reminder_days" in done.out  # the reminder says why
