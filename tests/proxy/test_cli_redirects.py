"""The `tokenhub keys` CLI's admin client never follows a redirect, so the admin token never goes to
another host: a real admin-like server answering 3xx towards a recording server on another port."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from proxy.cli.client import AdminClient, AdminError

TOKEN = "admin-token-for-redirect-test-0123"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_the_admin_token_never_follows_a_redirect(aiohttp_server: Any, status: int) -> None:
    seen: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"data": [], "next_cursor": None})

    other_app = web.Application()
    other_app.router.add_route("*", "/{tail:.*}", elsewhere)
    other = await aiohttp_server(other_app)

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": str(other.make_url(request.path))})

    admin_app = web.Application()
    admin_app.router.add_route("*", "/{tail:.*}", moved)
    admin = await aiohttp_server(admin_app)
    client = AdminClient(str(admin.make_url("")).rstrip("/"), TOKEN, timeout=10)
    with pytest.raises(AdminError) as info:
        await asyncio.to_thread(client.call, "GET", "/admin/keys")
    assert info.value.status == status and info.value.code == "redirect_refused"
    assert seen == []  # the other host got nothing, least of all the token
