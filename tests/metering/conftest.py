"""Metering fixtures (their helpers live in tests/support/metering.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from keystore import KeystoreSettings

from proxy.app import create_admin_app, create_app
from tests.support.metering import ADMIN_TOKEN, Recorder, Stack, metering_config


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def metered_stack(database_url: str, redis_url: str, settings: KeystoreSettings, pool: Any, recorder: Recorder,
                aiohttp_server: Any, aiohttp_client: Any) -> AsyncIterator[Stack]:
    upstream = await aiohttp_server(recorder.app())
    config = metering_config(database_url, redis_url, settings, str(upstream.make_url("/v1")))
    proxy_app = create_app(config)
    proxy = await aiohttp_server(proxy_app)
    admin = await aiohttp_client(create_admin_app(config, proxy_app),
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    yield Stack(proxy, admin)
    recorder.release.set()
