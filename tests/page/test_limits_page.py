"""Limits on the API Keys page (a real browser): set in the New API Key dialog, shown in the keys table,
and enforced on the key that was created."""

from __future__ import annotations

from playwright.async_api import expect

from tests.support.page import Stack, Tab


async def test_limits_set_in_the_dialog_are_shown_and_enforced(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    await page.get_by_role("button", name="New API Key").click()
    dialog = page.get_by_role("dialog", name="New API Key")
    await dialog.get_by_label("Name").fill("limited-service")
    await dialog.get_by_label("Requests / minute").fill("2")
    await dialog.get_by_label("USD / month").fill("12.5")
    await dialog.get_by_role("button", name="Create key").click()
    key = await tab.read_secret()
    await tab.close_secret()
    limits = tab.row("limited-service").get_by_role("list", name="Limits")
    await expect(limits).to_contain_text("2 rpm")
    await expect(limits).to_contain_text("12.5 USD/mo")
    assert [await page_stack.chat(key) for _ in range(3)] == [200, 200, 429]
    assert tab.problems == []
