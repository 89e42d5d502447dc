"""The usage endpoint's buckets, grouping and validation, and `usage_this_month` on key objects, over
rollup rows written through the same batch statement the proxy uses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from keystore.usage import UsageRow

from tests.support.metering import Stack


def row(key_id: str, hour: datetime, model: str = "openai/a", tokens: int = 10) -> UsageRow:
    return UsageRow(key_id, hour, model, 1, 0, tokens, 0, tokens // 2, Decimal("0.25"))


async def write(metered_stack: Stack, *rows: UsageRow) -> None:
    await metered_stack.meter.db.write_batch(uuid.uuid4(), rows)


async def test_granularity_and_group_by(metered_stack: Stack) -> None:
    _, kid = await metered_stack.issue()
    day = datetime(2030, 1, 1, tzinfo=UTC)
    await write(metered_stack, row(kid, day + timedelta(hours=1)), row(kid, day + timedelta(hours=2), "openai/b"),
                row(kid, day + timedelta(days=1)))
    span = {"from": "2030-01-01T00:00:00Z", "to": "2030-02-01T00:00:00Z"}
    days = await metered_stack.usage(kid, **span)
    assert [(b["start"], b["requests"]) for b in days["data"]] == [("2030-01-01T00:00:00Z", 2),
                                                                   ("2030-01-02T00:00:00Z", 1)]
    assert days["total"] | {"usd": 0} == {"requests": 3, "unmetered_requests": 0, "input_tokens": 30,
                                          "cached_input_tokens": 0, "output_tokens": 15, "usd": 0}
    assert days["total"]["usd"] == 0.75
    by_model = await metered_stack.usage(kid, granularity="month", group_by="model", **span)
    assert [(b["model"], b["requests"]) for b in by_model["data"]] == [("openai/a", 2), ("openai/b", 1)]
    hours = await metered_stack.usage(kid, granularity="hour", **{"from": "2030-01-01T02:00:00Z", "to": span["to"]})
    assert [b["start"] for b in hours["data"]] == ["2030-01-01T02:00:00Z", "2030-01-02T00:00:00Z"]


@pytest.mark.parametrize(("params", "param"), [
    ({"granularity": "week"}, "granularity"), ({"group_by": "key"}, "group_by"),
    ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "from"),
    ({"from": "yesterday"}, "from"), ({"granularity": "hour", "from": "2020-01-01T00:00:00Z"}, "from"),
    ({"month": "1"}, "month"),
])
async def test_bad_queries_are_400(metered_stack: Stack, params: dict[str, str], param: str) -> None:
    _, kid = await metered_stack.issue()
    r = await metered_stack.admin.get(f"/admin/keys/{kid}/usage", params=params)
    assert r.status == 400 and (await r.json())["error"]["param"] == param


async def test_unknown_key_is_404(metered_stack: Stack) -> None:
    r = await metered_stack.admin.get("/admin/keys/nosuchkey/usage")
    assert r.status == 404


async def test_usage_this_month_on_key_objects(metered_stack: Stack) -> None:
    _, kid = await metered_stack.issue()
    _, idle = await metered_stack.issue("idle")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    last_month = now.replace(day=1, hour=0) - timedelta(hours=1)
    await write(metered_stack, row(kid, now), row(kid, now, "openai/b", tokens=4), row(kid, last_month, tokens=1000))
    listed = {k["id"]: k["usage_this_month"] for k in (await (await metered_stack.admin.get("/admin/keys")).json())["data"]}
    assert listed[kid] == {"requests": 2, "input_tokens": 14, "output_tokens": 7, "usd": 0.5}
    assert listed[idle] == {"requests": 0, "input_tokens": 0, "output_tokens": 0, "usd": 0.0}
    shown = await (await metered_stack.admin.get(f"/admin/keys/{kid}")).json()
    assert shown["usage_this_month"] == listed[kid]
