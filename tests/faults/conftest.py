"""Fixtures for the fault and bad-input suite: real `tokenhub serve` processes (the production runner)
against the real Postgres and Redis, optionally behind a `TcpGate` a test can cut; a recording fake
provider in the test process; and a session-wide record of every key issued and every log line, error
body, metrics scrape and audit row seen, scanned for those keys at the end (test_zz_hygiene.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.fakes import FakeProvider
from tests.support.faults import (
    CHAT,
    GUARD,
    MODELS,
    PROVIDER_ENV,
    Answer,
    Client,
    Cluster,
    Hygiene,
    body_of,
    metric,
    raw_request,
    scrape,
    status_of,
)
from tests.support.gates import TcpGate
from tests.support.keys import forged

FreezableGate = TcpGate  # old name: every TcpGate freezes now (tests/support/gates.py)

# old import paths: import these from tests.support.faults
__all__ = [
    "CHAT",
    "GUARD",
    "MODELS",
    "PROVIDER_ENV",
    "Answer",
    "Client",
    "Cluster",
    "FreezableGate",
    "Hygiene",
    "body_of",
    "forged",
    "metric",
    "raw_request",
    "scrape",
    "status_of",
]


pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def hygiene() -> Hygiene:
    return Hygiene()


@pytest.fixture(autouse=True)
def _capture_logs(caplog: pytest.LogCaptureFixture, hygiene: Hygiene) -> Any:
    """Every in-process log record (the fake provider, the test's own clients) goes to the scan."""
    caplog.set_level(logging.DEBUG)
    yield
    hygiene.add("caplog", caplog.text)


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(models=MODELS)


@pytest.fixture
async def provider_url(aiohttp_server: Any, fake: FakeProvider) -> str:
    server = await aiohttp_server(fake.app)
    return str(server.make_url("/v1"))


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str, redis_url: str, namespace: str, provider_url: str,
                  migrated: None, hygiene: Hygiene) -> AsyncIterator[Cluster]:
    async with contextlib.AsyncExitStack() as stack:
        c = Cluster(tmp_path, database_url, redis_url, namespace, provider_url, hygiene, stack)
        yield c
        for proc in c.procs:  # what an operator would scrape and read, before the process stops
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                hygiene.add(f"metrics:{proc.port}", await scrape(proc))


@pytest.fixture
async def client(hygiene: Hygiene) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, hygiene)
