"""Pieces of the limiter with exact answers: UTC months as the Lua scripts compute them on Redis, and the
durations of the `x-ratelimit-reset-*` headers in OpenAI's form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from proxy.limits import tickets
from proxy.limits.answers import duration
from proxy.limits.scripts import PRELUDE

MOMENTS = [datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC),
           datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
           datetime(2000, 2, 29, 12, tzinfo=UTC), datetime(2100, 3, 1, tzinfo=UTC),
           datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2030, 7, 15, 8, 30, tzinfo=UTC)]


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.isoformat() for m in MOMENTS])
async def test_the_scripts_utc_month_is_the_calendar_month(redis: Redis, moment: datetime) -> None:
    month = await redis.eval(PRELUDE + "return month_of(tonumber(ARGV[1]))", 0, moment.timestamp())
    assert month == moment.year * 100 + moment.month


@pytest.mark.parametrize(("ms", "text"), [(0, "0s"), (-5, "0s"), (12, "12ms"), (999, "999ms"), (1000, "1s"),
                                          (1500, "1.5s"), (59_999, "59.999s"), (60_000, "1m0s"),
                                          (90_500, "1m30.5s"), (360_000, "6m0s"), (3_600_000, "1h0m0s"),
                                          (3_723_000, "1h2m3s")])
def test_reset_durations_are_in_openais_form(ms: int, text: str) -> None:
    assert duration(ms) == text


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.isoformat() for m in MOMENTS])
def test_the_limiters_own_month_is_the_calendar_month_and_ends_with_it(moment: datetime,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:
            return moment

    monkeypatch.setattr(tickets, "datetime", Frozen)
    monkeypatch.setattr(tickets, "_month", [0, 0.0])
    monkeypatch.setattr(tickets.time, "time", lambda: moment.timestamp())
    assert tickets.month_now() == moment.year * 100 + moment.month
    ends = tickets._month[1]
    assert datetime.fromtimestamp(ends, UTC).day == 1 and ends > moment.timestamp()
    assert datetime.fromtimestamp(ends - 1, UTC).month == moment.month  # the cache ends when the month does
