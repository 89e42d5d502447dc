"""`/metrics` on the admin listener: the counters move with real traffic (requests by route and status,
latency, cache layers, argon2, the revocation feed), and neither metrics nor logs carry key material."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from keystore import keygen

from tests.support.ops import admin_call, chat, sample, scrape, wait_until
from tests.support.procs import ServeProcess, serving

pytestmark = pytest.mark.slow
CHAT = "/v1/chat/completions"


@pytest.fixture
async def server(make_config: Callable[..., Path]) -> AsyncIterator[ServeProcess]:
    async with serving(make_config()) as proc:
        yield proc


async def traffic(proc: ServeProcess) -> dict[str, str]:
    """A cold and a warm request with a real key, two with an unknown one, then a revoke."""
    created = await admin_call(proc, "POST", "/admin/keys", {"name": "metrics"})
    unknown, _, _ = keygen.mint()  # well-formed, never stored
    async with aiohttp.ClientSession() as session:
        assert [(await chat(session, proc, created["key"]))[0] for _ in range(2)] == [200, 200]
        assert [(await chat(session, proc, unknown))[0] for _ in range(2)] == [401, 401]
    await admin_call(proc, "POST", f"/admin/keys/{created['id']}/revoke")
    return {"key": created["key"], "id": created["id"], "unknown": unknown}


async def test_counters_move(server: ServeProcess) -> None:
    before = await scrape(server)
    assert sample(before, "tokenhub_revocation_feed_up") == 1
    await traffic(server)
    after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("tokenhub_requests_total", route=CHAT, status="200") == 2
    assert moved("tokenhub_requests_total", route=CHAT, status="401") == 2
    assert moved("tokenhub_request_duration_seconds_count", route=CHAT) == 4
    assert moved("tokenhub_key_cache_total", layer="local", outcome="hit") == 1
    assert moved("tokenhub_key_cache_total", layer="negative", outcome="hit") == 1
    assert moved("tokenhub_key_cache_total", layer="postgres", outcome="read") >= 2
    assert moved("tokenhub_argon2_verifications_total") == 1
    assert moved("tokenhub_revocation_messages_total") == 1
    assert sample(after, "tokenhub_revocation_lag_seconds") >= 0


async def test_no_key_material_in_metrics_or_logs(server: ServeProcess) -> None:
    used = await traffic(server)
    text = await scrape(server)
    secrets = (used["key"], keygen.parse(used["key"])[1], used["unknown"], keygen.parse(used["unknown"])[1])
    assert not any(s in text for s in secrets)
    await wait_until(lambda: used["id"] in server.log())
    assert not any(s in server.log() for s in secrets)


async def test_access_log_is_json_with_request_and_key_id(server: ServeProcess) -> None:
    created = await admin_call(server, "POST", "/admin/keys", {"name": "logged"})
    async with aiohttp.ClientSession() as session, session.get(
            server.url("/v1/models"), headers={"Authorization": f"Bearer {created['key']}"}) as r:
        assert r.status == 200
        request_id = r.headers["x-request-id"]

    def access_line() -> dict[str, str] | None:
        lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
        return next((x for x in lines if x["logger"] == "tokenhub.access" and x["request_id"] == request_id), None)

    line = await wait_until(access_line)
    assert line["key_id"] == created["id"] and line["message"].startswith("GET /v1/models 200")
