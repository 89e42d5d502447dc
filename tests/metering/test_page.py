"""The API Keys page's usage column and 30-day chart, in Debian's Chromium under the page's strict CSP:
the numbers are the rollups', one bar per day with use, no console error, the table still fits 1440 px.
`TOKENHUB_UPDATE_SCREENSHOT=1` writes deploy/screenshots/api-keys-usage.png."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from keystore.usage import UsageRow

from tests.support.metering import ADMIN_TOKEN, CHAT, Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "deploy" / "screenshots" / "api-keys-usage.png"
DAILY = [1200, 0, 3400, 800, 0, 0, 5100, 2600, 900, 4000]  # production's tokens on the last ten days


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        await chromium.close()


async def history(metered_stack: Stack, key_id: str, today: datetime) -> None:
    """Past days of use, written as the proxy writes its batches (input ≈ 3/4 of each day's tokens)."""
    rows = [UsageRow(key_id, today - timedelta(days=len(DAILY) - 1 - i), f"openai/{CHAT}", tokens // 40,
                     0, tokens * 3 // 4, 0, tokens - tokens * 3 // 4, Decimal(tokens) * Decimal("0.0000003"))
            for i, tokens in enumerate(DAILY) if tokens]
    await metered_stack.meter.db.write_batch(uuid.uuid4(), rows)


async def open_page(browser: Browser, metered_stack: Stack, problems: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    page = await context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(str(metered_stack.admin.make_url("/ui/keys")))
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    return page


async def test_usage_column_and_chart(metered_stack: Stack, browser: Browser) -> None:
    key, production = await metered_stack.issue("production")
    await metered_stack.issue("staging")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await history(metered_stack, production, today)
    async with metered_stack.sdk(key) as sdk:
        await sdk.chat.completions.create(model=f"openai/{CHAT}", messages=[{"role": "user", "content": "hi"}])
    await metered_stack.meter.flush()
    problems: list[str] = []
    page = await open_page(browser, metered_stack, problems)
    row = page.get_by_role("row").filter(has_text="production")
    chart = row.get_by_role("img", name="Tokens per day")
    await expect(chart).to_be_visible()
    bars = await chart.locator("rect").evaluate_all("rs => rs.map(r => Number(r.dataset.tokens))")
    assert sum(bars) == sum(DAILY) + 22 and len(bars) == sum(1 for t in DAILY if t)  # + today's request
    month = (await (await metered_stack.admin.get(f"/admin/keys/{production}")).json())["usage_this_month"]
    await expect(row.locator(".usage-total")).to_have_attribute("title", f"This month: {month['input_tokens']} input "
                                                                f"and {month['output_tokens']} output tokens, "
                                                                f"{month['requests']} requests")
    await expect(page.get_by_role("row").filter(has_text="staging").locator(".usage-total")).to_have_text("0 tokens")
    overflow = await page.evaluate("(() => { const c = document.querySelector('.table-card');"
                                   " return c.scrollWidth - c.clientWidth; })()")
    shot = await page.screenshot(full_page=True)
    if os.environ.get("TOKENHUB_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot)
    assert overflow == 0 and problems == []
