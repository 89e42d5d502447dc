"""A limited key's admitted request (`Ticket`) and the small pure pieces around it: whether limits count
anything, UTC months, and what a metered answer corrects of its reservation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from keystore import KeyLimits

from proxy.limits.demand import Demand
from proxy.metering.tap import Metered
from proxy.metering.usage import Unmetered

# A figure is believed as it is only when complete or when the provider refused the request (it used
# nothing); otherwise (the client left, the stream broke, no usage reported) the reservation stands.
_BELIEVED = (None, Unmetered.PROVIDER_ERROR)


@dataclass(frozen=True, slots=True)
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
    return any(v is not None for v in (limits.requests_per_minute, limits.tokens_per_minute,
                                       limits.max_concurrent_requests, limits.tokens_per_month, limits.usd_per_month))


def month_now() -> int:
    now = datetime.now(UTC)
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

