"""A limited key's admitted request (`Ticket`) and the small pure pieces around it: whether limits count
anything, UTC months, and what a metered answer corrects of its reservation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from keystore import KeyLimits

from proxy.limits.demand import Demand
from proxy.metering.tap import Metered
from proxy.metering.usage import Unmetered

# A figure is believed as it is only when complete or when the provider refused the request (it used
# nothing); otherwise (the client left, the stream broke, no usage reported) the reservation stands.
_BELIEVED = (None, Unmetered.PROVIDER_ERROR)


@dataclass(slots=True)  # not frozen: one is built per request, and a frozen init costs twice as much
class Ticket:
    """One admitted request of a limited key, until `finish()`."""

    key_id: str
    limits: KeyLimits
    demand: Demand
    lease: str  # "" without a concurrency limit
    month: int  # yyyymm the reservation was counted in
    shared: bool  # counted in Redis (else by this instance's fallback, or not at all when fail-open)
    counted: bool = True
    headers: dict[str, str] = field(default_factory=dict)


def counted(limits: KeyLimits) -> bool:
    """Whether the limits count anything in shared state (max_tokens_per_request alone does not)."""
    return (limits.requests_per_minute is not None or limits.tokens_per_minute is not None
            or limits.max_concurrent_requests is not None or limits.tokens_per_month is not None
            or limits.usd_per_month is not None)


_month = [0, 0.0]  # this UTC month (yyyymm) and the time it ends, so most calls read no calendar


def month_now() -> int:
    """This UTC month as yyyymm."""
    if time.time() < _month[1]:
        return int(_month[0])
    now = datetime.now(UTC)
    ends = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    _month[:] = [now.year * 100 + now.month, ends.timestamp()]
    return now.year * 100 + now.month


def month_start(month: int) -> datetime:
    return datetime(month // 100, month % 100, 1, tzinfo=UTC)


def deltas(demand: Demand, metered: Metered | None) -> tuple[int, int]:
    """(tokens, micro-USD) metered minus reserved."""
    if metered is None:
        return 0, 0
    used = metered.usage.input_tokens + metered.usage.output_tokens
    micro = 0 if metered.usd is None else round(metered.usd * 1_000_000)
    if metered.reason not in _BELIEVED:
        used, micro = max(used, demand.tokens), max(micro, demand.micro_usd)
    return used - demand.tokens, micro - demand.micro_usd

