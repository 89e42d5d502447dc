"""Fleet fixtures (their helpers live in tests/support/fleet.py and tests/support/fleet_services.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from proxy.runtime.demo import start_demo


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    runner, port = await start_demo(port=0)
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()
