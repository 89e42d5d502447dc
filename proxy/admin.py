"""The admin listener's routes: `/admin/…` REST (admin token), `/metrics`."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """(Being built: issue 4.)"""
