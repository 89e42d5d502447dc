"""The page with realistic data: it lays out without overflow or errors, and its screenshot is what
the README shows (`TOKENHUB_UPDATE_SCREENSHOT=1` writes deploy/screenshots/api-keys*.png)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
from playwright.async_api import expect

from tests.support.page import OpenTab, Providers, Stack, StartStack, Tab

SCREENSHOTS = Path(__file__).resolve().parents[2] / "deploy" / "screenshots"
PRODUCT_PROVIDERS: Providers = (
    ("openai", ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")),
    ("vllm", ("llama-3.1-70b-instruct", "qwen2.5-coder-32b")),
)


async def _populate(tab: Tab, page_stack: Stack, pool: asyncpg.Pool) -> str:
    """Keys an operator would have: restricted ones, one expiring, one rotating out, one revoked, one
    expired. Returns the key of `production`, which has been used."""
    production = await tab.create_key("production", account="acme-web", providers=("openai",))
    await tab.close_secret()
    await tab.create_key("staging-team-a", account="acme-web", models=("openai/gpt-4o-mini", "vllm/qwen2.5-coder-32b"),
                         expires="2031-06-30")
    await tab.close_secret()
    await tab.create_key("dev", account="acme-labs")
    await tab.close_secret()
    for name in ("batch-embeddings", "ci-pipeline", "legacy-importer"):
        await page_stack.admin_call("POST", "/admin/keys", json={"name": name, "account": "acme-data"})
    keys = {k["name"]: k["id"] for k in (await page_stack.admin_call("GET", "/admin/keys"))["data"]}
    await page_stack.admin_call("POST", f"/admin/keys/{keys['batch-embeddings']}/rotate", json={"grace_seconds": 86400})
    await page_stack.admin_call("POST", f"/admin/keys/{keys['ci-pipeline']}/revoke")
    # No API can set a past expiry, so the expired key is aged in Postgres directly.
    await pool.execute("UPDATE api_keys SET created_at = now() - interval '400 days', "
                       "expires_at = now() - interval '30 days' WHERE id = $1", keys["legacy-importer"])
    return production


async def test_screenshot_with_realistic_keys(start_stack: StartStack, open_tab: OpenTab, pool: asyncpg.Pool) -> None:
    page_stack = await start_stack(PRODUCT_PROVIDERS, last_used_flush_seconds=0.2)
    tab = await open_tab(page_stack)
    page = tab.page
    await tab.sign_in()
    production = await _populate(tab, page_stack, pool)
    assert await page_stack.chat(production, "openai/gpt-4o") == 200
    await _wait_for_last_used(page_stack, "production")
    await page.reload()
    await expect(page.get_by_role("row")).to_have_count(8)  # header + 7 keys (one rotated pair)
    await expect(tab.row("production")).to_contain_text("just now")
    await expect(tab.row("legacy-importer").get_by_text("Expired")).to_be_visible()
    overflow = await page.evaluate("(() => { const c = document.querySelector('.table-card');"
                                   " return c.scrollWidth - c.clientWidth; })()")
    await _save(tab, "api-keys.png")
    assert overflow == 0  # the whole table fits a 1440 px wide window
    assert tab.problems == []
    await _new_key_dialog(tab)
    await _save(tab, "api-keys-create.png")
    await page.get_by_role("button", name="Create key").click()
    await tab.read_secret()
    await _save(tab, "api-keys-new-key.png")


async def _new_key_dialog(tab: Tab) -> None:
    await tab.page.get_by_role("button", name="New API Key").click()
    dialog = tab.page.get_by_role("dialog", name="New API Key")
    await dialog.get_by_label("Name").fill("analytics-dashboard")
    await dialog.get_by_label("Account").fill("acme-web")
    await dialog.get_by_label("Expiration date").fill("2031-12-31")
    await dialog.get_by_role("checkbox", name="openai", exact=True).check()
    await dialog.get_by_role("checkbox", name="openai/gpt-4o-mini").check()


async def _wait_for_last_used(page_stack: Stack, name: str) -> None:
    """Until the batched last-used flush has reached Postgres (a guard against hanging, no timing)."""
    for _ in range(200):
        keys = (await page_stack.admin_call("GET", "/admin/keys"))["data"]
        if any(k["name"] == name and k["last_used_at"] for k in keys):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"last_used_at of {name!r} never reached the admin API")


async def _save(tab: Tab, name: str) -> None:
    shot = await tab.page.screenshot(full_page=True)
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("TOKENHUB_UPDATE_SCREENSHOT") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(shot)
