"""The API Keys page in a real browser (Debian's Chromium), against a real admin listener and proxy."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.support.page import ADMIN_TOKEN, Stack, Tab


async def test_sign_in_keeps_the_token_in_session_storage_only(tab: Tab) -> None:
    page = tab.page
    await tab.sign_in()
    await expect(page.get_by_role("heading", name="API Keys")).to_be_visible()
    assert ADMIN_TOKEN not in page.url
    assert await page.evaluate("document.cookie") == ""
    assert await page.evaluate("sessionStorage.getItem('tokenhub.adminToken')") == ADMIN_TOKEN
    assert await page.evaluate("localStorage.length") == 0
    await page.reload()  # the same tab stays signed in
    await expect(page.get_by_role("button", name="New API Key")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Admin token")).to_be_focused()
    assert await page.evaluate("sessionStorage.length") == 0
    assert tab.problems == []


async def test_a_wrong_token_is_refused(tab: Tab) -> None:
    await tab.sign_in("not-the-admin-token-at-all")
    await expect(tab.page.get_by_role("alert")).to_have_text("That admin token was not accepted.")
    await expect(tab.page.get_by_role("heading", name="API Keys")).to_be_hidden()
    assert await tab.page.evaluate("sessionStorage.length") == 0


async def test_create_use_reload_revoke(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    key = await tab.create_key("checkout-service", account="shop")
    dialog = page.get_by_role("dialog", name="Save your API key")
    await expect(dialog).to_contain_text("This key will not be shown again.")
    assert await page_stack.chat(key) == 200
    await tab.close_secret()
    await expect(dialog).to_be_hidden()
    row = tab.row("checkout-service")
    await expect(row).to_contain_text("shop")
    await expect(row.get_by_text("Active")).to_be_visible()
    await page.reload()
    await expect(row).to_be_visible()
    assert key not in await page.content()
    assert key[-4:] in await row.inner_text()  # the hint ends like the key, and that is all it shows
    await row.get_by_role("button", name="Revoke").click()
    confirm = page.get_by_role("dialog", name="Revoke key")
    await confirm.get_by_role("button", name="Revoke key").click()
    await expect(row.get_by_text("Revoked")).to_be_visible()
    await expect(page.get_by_role("status").filter(has_text="revoked")).to_contain_text("confirmed")
    assert await page_stack.chat(key) == 401
    assert tab.problems == []


async def test_revoke_can_be_cancelled(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    key = await tab.create_key("keep-me")
    await tab.close_secret()
    revoke = tab.row("keep-me").get_by_role("button", name="Revoke")
    await revoke.click()
    await page.get_by_role("dialog", name="Revoke key").get_by_role("button", name="Cancel").click()
    await expect(revoke).to_be_focused()  # focus goes back to the row's button
    await expect(tab.row("keep-me").get_by_text("Active")).to_be_visible()
    assert await page_stack.chat(key) == 200


async def test_rotate_shows_the_new_key_once_and_honours_the_grace_period(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    old = await tab.create_key("batch-jobs")
    await tab.close_secret()
    await tab.row("batch-jobs").get_by_role("button", name="Rotate").click()
    rotate = page.get_by_role("dialog", name="Rotate key")
    await rotate.get_by_label("Old key keeps working for").select_option(label="1 hour")
    await rotate.get_by_role("button", name="Rotate key").click()
    new = await tab.read_secret()
    assert new != old
    await expect(page.get_by_role("dialog", name="Save your API key")).to_contain_text("keeps working for 1 hour")
    assert (await page_stack.chat(new), await page_stack.chat(old)) == (200, 200)
    await tab.close_secret()
    rows = page.get_by_role("row").filter(has_text="batch-jobs")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="Rotated out, ends in")).to_have_count(1)
    assert new not in await page.content()
    assert tab.problems == []


async def test_rotate_without_grace_stops_the_old_key(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    old = await tab.create_key("nightly")
    await tab.close_secret()
    await tab.row("nightly").get_by_role("button", name="Rotate").click()
    rotate = page.get_by_role("dialog", name="Rotate key")
    await rotate.get_by_label("Old key keeps working for").select_option(value="0")
    await rotate.get_by_role("button", name="Rotate key").click()
    new = await tab.read_secret()
    assert (await page_stack.chat(new), await page_stack.chat(old)) == (200, 401)
    await tab.close_secret()
    await expect(page.get_by_role("row").filter(has_text="nightly").filter(has_text="Revoked")).to_have_count(1)


async def test_restrictions_are_picked_from_the_configured_models(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    await page.get_by_role("button", name="New API Key").click()
    dialog = page.get_by_role("dialog", name="New API Key")
    models = dialog.get_by_role("group", name="Allowed models").get_by_role("checkbox")
    await expect(models).to_have_count(4)  # demo/echo, demo/echo-mini, demo/embed-small, labs/echo
    await dialog.get_by_role("checkbox", name="demo", exact=True).check()
    await expect(dialog.get_by_role("checkbox", name="labs/echo")).to_be_disabled()
    await dialog.get_by_role("button", name="Cancel").click()
    key = await tab.create_key("echo-only", models=("demo/echo",))
    assert (await page_stack.chat(key, "demo/echo"), await page_stack.chat(key, "demo/echo-mini")) == (200, 403)
    await tab.close_secret()
    await expect(tab.row("echo-only").get_by_role("list", name="Restrictions")).to_have_text("demo/echo")
    stored = await page_stack.admin_call("GET", "/admin/keys")
    assert [(k["allowed_models"], k["allowed_providers"]) for k in stored["data"]] == [(["demo/echo"], [])]


async def test_expiration_date_is_the_end_of_that_day_utc(tab: Tab, page_stack: Stack) -> None:
    await tab.sign_in()
    await tab.create_key("contractor", expires="2031-03-15")
    await tab.close_secret()
    await expect(tab.row("contractor")).to_contain_text("Mar 15, 2031")
    stored = await page_stack.admin_call("GET", "/admin/keys")
    assert [k["expires_at"] for k in stored["data"]] == ["2031-03-15T23:59:59Z"]


async def test_filters_by_account_and_status(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    for name, account in [("web", "acme"), ("mobile", "acme"), ("etl", "globex")]:
        made = await page_stack.admin_call("POST", "/admin/keys", json={"name": name, "account": account})
    await page_stack.admin_call("POST", f"/admin/keys/{made['id']}/revoke")
    await tab.sign_in()
    filters = page.get_by_role("search", name="Filter keys")
    await expect(page.get_by_role("row")).to_have_count(4)  # the header row and three keys
    await filters.get_by_label("Account").fill("acme")
    await expect(page.get_by_role("row")).to_have_count(3)
    await expect(page.get_by_text("2 keys")).to_be_visible()
    await filters.get_by_label("Account").fill("")
    await filters.get_by_label("Status").select_option("revoked")
    await expect(page.get_by_role("row")).to_have_count(2)
    await expect(tab.row("etl")).to_be_visible()


async def test_empty_list_says_so(tab: Tab) -> None:
    await tab.sign_in()
    await expect(tab.page.get_by_text("No API keys here yet")).to_be_visible()


async def test_a_name_is_required(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await tab.sign_in()
    await page.get_by_role("button", name="New API Key").click()
    dialog = page.get_by_role("dialog", name="New API Key")
    await dialog.get_by_role("button", name="Create key").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("Give the key a name")
    await expect(dialog.get_by_label("Name")).to_be_focused()
    assert (await page_stack.admin_call("GET", "/admin/keys"))["data"] == []


async def test_api_errors_are_shown_in_the_dialog(tab: Tab) -> None:
    page = tab.page
    await tab.sign_in()
    await page.get_by_role("button", name="New API Key").click()
    dialog = page.get_by_role("dialog", name="New API Key")
    await dialog.get_by_label("Name").fill("billing")
    await dialog.get_by_label("Account").fill("not valid!")  # the page sends it, the admin API refuses it
    await dialog.get_by_role("button", name="Create key").click()
    await expect(dialog.get_by_role("alert")).to_contain_text(re.compile(r"account", re.IGNORECASE))
    await expect(dialog).to_be_visible()


async def test_keyboard_only(tab: Tab) -> None:
    page = tab.page
    await tab.sign_in()
    new_key = page.get_by_role("button", name="New API Key")
    await new_key.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New API Key")
    await expect(dialog.get_by_label("Name")).to_be_focused()
    await page.keyboard.type("keyboard-key")
    await page.keyboard.press("Enter")  # submits the form
    secret = page.get_by_role("dialog", name="Save your API key")
    await expect(secret.get_by_role("button", name="Copy")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(secret).to_be_hidden()
    await expect(new_key).to_be_focused()
    await expect(page.locator("#secret-value")).to_have_value("")  # the closed dialog no longer holds it
    await expect(tab.row("keyboard-key")).to_be_visible()


async def test_copy_button_puts_the_key_on_the_clipboard(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page_stack.page_url.rstrip("/"))
    await tab.sign_in()
    key = await tab.create_key("clipboard")
    await page.get_by_role("button", name="Copy").click()
    await expect(page.get_by_role("dialog").get_by_role("status")).to_have_text("Copied to the clipboard.")
    assert await page.evaluate("navigator.clipboard.readText()") == key


async def test_a_rejected_token_ends_the_session(tab: Tab) -> None:
    page = tab.page
    await tab.sign_in()
    await expect(page.get_by_role("button", name="New API Key")).to_be_visible()
    await page.evaluate("sessionStorage.setItem('tokenhub.adminToken', 'a-token-that-was-rotated-away')")
    await page.reload()
    await expect(page.get_by_role("alert")).to_have_text("Your admin token was not accepted. Sign in again.")
    await expect(page.get_by_label("Admin token")).to_be_focused()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_long_lists_load_more(tab: Tab, page_stack: Stack) -> None:
    page = tab.page
    for n in range(53):  # the page asks for 50 at a time
        await page_stack.admin_call("POST", "/admin/keys", json={"name": f"tenant-{n:02d}"})
    await tab.sign_in()
    await expect(page.get_by_text("50 keys shown")).to_be_visible()
    await page.get_by_role("button", name="Load more").click()
    await expect(page.get_by_text("53 keys")).to_be_visible()
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    await expect(tab.row("tenant-00")).to_be_visible()  # the oldest, on the second page
