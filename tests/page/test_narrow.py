"""The API Keys page at 1280 px (a common laptop width) with a key in its rotation grace period:
every row's Rotate and Revoke stay on screen (not clipped or scrolled away), and a key older than
`[keystore] rotation_reminder_days` is flagged. The screenshot is written with
`TOKENHUB_UPDATE_SCREENSHOT=1` (deploy/screenshots/api-keys-1280.png)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import asyncpg
from playwright.async_api import expect

from tests.support.page import OpenTab, Providers, StartStack

SCREENSHOT = Path(__file__).resolve().parents[2] / "deploy" / "screenshots" / "api-keys-1280.png"
WIDTH = 1280
PROVIDERS: Providers = (
    ("openai", ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")),
    ("vllm", ("llama-3.1-70b-instruct", "qwen2.5-coder-32b")),
)
# Is the element painted at its own centre, inside the window (not clipped by the table's scroll box)?
ON_SCREEN = """(el) => { const r = el.getBoundingClientRect(); const x = r.left + r.width / 2, y = r.top + r.height / 2;
  if (r.right > window.innerWidth || r.left < 0) return false;
  const hit = document.elementFromPoint(x, y); return hit !== null && (hit === el || el.contains(hit)); }"""


async def populate(page_stack: object, pool: asyncpg.Pool) -> None:
    call = page_stack.admin_call  # type: ignore[attr-defined]
    await call("POST", "/admin/keys", json={"name": "production-web-frontend", "account": "acme-web",
                                            "allowed_providers": ["openai"]})
    await call("POST", "/admin/keys", json={"name": "staging-team-a", "account": "acme-web", "expires_at":
                                            "2031-06-30T23:59:59Z", "allowed_models": [
                                                "openai/gpt-4o-mini", "vllm/qwen2.5-coder-32b"]})
    rotating = await call("POST", "/admin/keys", json={"name": "batch-embeddings", "account": "acme-data"})
    await call("POST", f"/admin/keys/{rotating['id']}/rotate", json={"grace_seconds": 86400})
    old = await call("POST", "/admin/keys", json={"name": "legacy-importer", "account": "acme-data"})
    await pool.execute("UPDATE api_keys SET created_at = now() - interval '400 days' WHERE id = $1", old["id"])


async def test_actions_stay_on_screen_at_1280_px_with_a_key_in_grace(start_stack: StartStack, open_tab: OpenTab,
                                                                     pool: asyncpg.Pool) -> None:
    page_stack = await start_stack(PROVIDERS)
    await populate(page_stack, pool)
    tab = await open_tab(page_stack)
    page = tab.page
    await page.set_viewport_size({"width": WIDTH, "height": 900})
    await tab.sign_in()
    await expect(page.get_by_role("row")).to_have_count(6)  # header + 5 keys (the rotated pair included)
    await expect(page.get_by_text("Rotated out, ends")).to_be_visible()
    for action in ("Rotate", "Revoke"):
        buttons = page.get_by_role("button", name=re.compile(f"^{action} "))
        await expect(buttons).to_have_count(5)
        for n in range(5):
            assert await buttons.nth(n).evaluate(ON_SCREEN), f"{action} of row {n} is not on screen at {WIDTH} px"
    shot = await page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG") and tab.problems == []
    if os.environ.get("TOKENHUB_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(shot)


async def test_a_key_past_the_rotation_reminder_is_flagged(start_stack: StartStack, open_tab: OpenTab,
                                                           pool: asyncpg.Pool) -> None:
    page_stack = await start_stack(PROVIDERS)
    await populate(page_stack, pool)
    tab = await open_tab(page_stack)
    await tab.sign_in()
    await expect(tab.row("legacy-importer")).to_contain_text("400 days old")
    await expect(tab.row("legacy-importer")).to_contain_text("Rotation due")
    await expect(tab.row("staging-team-a")).not_to_contain_text("Rotation due")
    await expect(tab.row("staging-team-a")).to_contain_text("0 days old")
