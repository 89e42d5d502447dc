"""Issue 12: each instance knows its offset to the Postgres clock, shows it in /readyz and /metrics, and past
the configured bound stops being ready (key decisions keep using Postgres time meanwhile)."""

from typing import Any

from aiohttp.test_utils import TestClient

from proxy.app import create_app
from proxy.config import Config
from proxy.state import KEYSTORE, METRICS
from tests.support import FakeClock, eventually


async def test_a_clock_two_minutes_behind_is_reported_and_not_ready(
        aiohttp_client: Any, pool: Any, config: Config, clock: FakeClock) -> None:
    clock.advance(-120)
    proxy: TestClient = await aiohttp_client(create_app(config, clock=clock))
    await eventually(lambda: proxy.app[KEYSTORE].feed_up)
    resp = await proxy.get("/readyz")
    body = await resp.json()
    assert (resp.status, body["status"], body["clock"]["within_bound"]) == (503, "clock_skew", False)
    assert abs(body["clock"]["offset_seconds"] - 120) < 5
    scrape = proxy.app[METRICS].render().decode()
    offset = next(line for line in scrape.splitlines() if line.startswith("tokenhub_clock_offset_seconds"))
    assert abs(float(offset.split()[-1]) - 120) < 5


async def test_an_agreeing_clock_is_ready_and_shows_its_offset(proxy: TestClient) -> None:
    await eventually(lambda: proxy.app[KEYSTORE].feed_up)
    body = await (await proxy.get("/readyz")).json()
    assert body["status"] == "ready" and body["clock"]["within_bound"] is True
    assert abs(body["clock"]["offset_seconds"]) < 5
