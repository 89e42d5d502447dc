"""Fixtures for tests that run real `tokenhub` processes against the real Postgres and Redis, with a
demo provider (proxy/runtime/demo.py) started in the test process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.runtime.demo import DEMO_MODELS, ChunkHook, start_demo
from tests.support.ops import (
    KEY_SHAPE,
    Demo,
    admin_call,
    chat,
    refused,
    sample,
    scrape,
    wait_until,
)
from tests.support.procs import provider, write_config

# old import paths: import these from tests.support.ops
__all__ = [
    "KEY_SHAPE",
    "Demo",
    "admin_call",
    "chat",
    "refused",
    "sample",
    "scrape",
    "wait_until",
]


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    d = Demo()
    hook: ChunkHook = d.on_chunk
    d.runner, d.port = await start_demo(port=0, on_chunk=hook)
    yield d
    d.release.set()
    await d.runner.cleanup()


@pytest.fixture
def make_config(tmp_path: Path, database_url: str, redis_url: str, namespace: str, migrated: None,
                demo: Demo) -> Callable[..., Path]:
    """A config file for `tokenhub serve`: free ports, the test database, this test's Redis namespace,
    the demo provider as provider `demo`."""
    def make(**sections: Any) -> Path:
        return write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace,
                            providers=[provider("demo", demo.base_url, DEMO_MODELS)], **sections)
    return make
