"""The `/v1/` sub-application: authenticate, check the model, forward to the provider, stream back."""

from __future__ import annotations

from aiohttp import web


def make_subapp() -> web.Application:
    """(Being built: issue 3.)"""
    return web.Application()
