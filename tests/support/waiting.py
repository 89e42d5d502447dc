"""Waiting for a condition (a guard against hanging, never a timing assertion) and running stores."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Wait until `check()` is truthy (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(*stores: Any) -> AsyncIterator[None]:
    """Start the stores (anything with start/close), close them on the way out."""
    for s in stores:
        await s.start()
    try:
        yield
    finally:
        for s in stores:
            await s.close()
