"""Allowances: a share of a key's limits taken from Redis ahead of use, so a busy key's requests are
decided in this process without a round trip.

A request of a limited key that no allowance covers goes to Redis (one ADMIT call). That call admits it
*and* asks for an allowance on top: `block` more requests' worth of the key's requests, tokens, month
and money, and as many concurrency slots as this process runs of the key. Redis grants up to the ask,
and never more than 1/`allowance_share` of what is left of each limit, so a key near a limit gets small
allowances and finally none (its requests are then each decided in Redis). What is granted is counted
in Redis as used at once: however many instances hold allowances, the fleet admits no more than the
shared counters allow (README "Limits and budgets" states the bound).

An allowance is used only for the limits it was granted under (a PATCH of limits ends it at the next
request) and in the month it was granted in, and for `allowance_seconds` at most. Its unused rest is
given back: with the next ADMIT call of the key (as a negative carry, before that call decides), or by
the maintenance loop once it expired. `block` doubles while a key keeps using its allowances up (up to
`allowance_requests`) and starts again at one otherwise, so a key with little traffic asks for little.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from keystore import KeyLimits

from proxy.limits.answers import Levels, rate_headers
from proxy.limits.demand import Demand
from proxy.limits.settings import LimitsConfig
from proxy.limits.shared import Ask, Carry, Grant

UNLIMITED = math.inf


def _left(value: float) -> int:
    return 0 if value == UNLIMITED else int(value)


@dataclass(slots=True)
class Allowance:
    """What this process may still admit of one key without asking Redis."""

    limits: KeyLimits
    month: int  # yyyymm on Redis' clock when granted; its month parts belong to that month only
    expires: float  # monotonic
    block: int  # requests' worth it asked for
    requests: float = UNLIMITED  # UNLIMITED: the key has no such limit
    tokens: float = UNLIMITED  # of tokens_per_minute
    month_tokens: float = UNLIMITED
    micro_usd: float = UNLIMITED
    slots: list[str] = field(default_factory=list)  # concurrency slots held in Redis, free here
    levels: Levels = field(default_factory=Levels)  # the per-minute buckets in Redis after the grant
    fixed: dict[str, str] = field(default_factory=dict)  # its headers as granted (see headers())

    @classmethod
    def granted(cls, limits: KeyLimits, month: int, expires: float, block: int, grant: Grant,
                levels: Levels) -> Allowance:
        def part(limit: object, amount: int) -> float:
            return UNLIMITED if limit is None else amount

        return cls(limits, month, expires, block, part(limits.requests_per_minute, grant.requests),
                   part(limits.tokens_per_minute, grant.tokens), part(limits.tokens_per_month, grant.month_tokens),
                   part(limits.usd_per_month, grant.micro_usd), levels=levels)

    def covers(self, demand: Demand, limits: KeyLimits, month: int, now: float) -> bool:
        return (self.requests >= 1 and self.tokens >= demand.tokens and self.month_tokens >= demand.tokens
                and self.micro_usd >= demand.micro_usd and now < self.expires and month == self.month
                and (limits is self.limits or limits == self.limits)
                and (bool(self.slots) or limits.max_concurrent_requests is None))

    def take(self, demand: Demand) -> str:
        """Admit one request: its share is taken from here; its concurrency slot (or "") is returned."""
        self.requests -= 1
        self.tokens -= demand.tokens
        self.month_tokens -= demand.tokens
        self.micro_usd -= demand.micro_usd
        return self.slots.pop() if self.slots else ""

    def low(self, demand: Demand) -> bool:
        """Less than half of the block it asked for is left (or no free slot): time to top it up."""
        half = self.block / 2
        return (self.requests < half or self.tokens < demand.tokens * half or self.month_tokens < demand.tokens * half
                or self.micro_usd < demand.micro_usd * half
                or (not self.slots and self.limits.max_concurrent_requests is not None))

    def absorb(self, tokens: int, micro_usd: int) -> bool:
        """A request's metered figure differs from what it reserved by these deltas: settle them here
        (a refund raises the allowance, a debt lowers it). False, changing nothing, when a debt is
        larger than what is left: it must be settled in Redis."""
        if tokens > self.tokens or tokens > self.month_tokens or micro_usd > self.micro_usd:
            return False
        self.tokens -= tokens
        self.month_tokens -= tokens
        self.micro_usd -= micro_usd
        return True

    def merge(self, other: Allowance) -> None:
        """Two grants of the same limits and month (a top-up, concurrent admissions): one allowance, which
        ends `allowance_seconds` after the newer grant."""
        self.requests += other.requests
        self.tokens += other.tokens
        self.month_tokens += other.month_tokens
        self.micro_usd += other.micro_usd
        self.slots += other.slots
        self.expires = max(self.expires, other.expires)
        self.block = max(self.block, other.block)
        self.levels, self.fixed = other.levels, {}

    def rest(self, month: int, limits: KeyLimits | None = None) -> Carry:
        """The unused rest as a carry that gives it back: its month parts within its month; its per-minute
        parts only to a decision under the same `limits` (else they are dropped: units taken under a
        larger capacity given back after a narrowing would refill a bucket the narrowing emptied)."""
        same_month, buckets = month == self.month, limits is not None and limits == self.limits
        return Carry(-_left(self.requests) if buckets else 0, -_left(self.tokens) if buckets else 0,
                     -_left(self.month_tokens) if same_month else 0, -_left(self.micro_usd) if same_month else 0)

    def headers(self) -> dict[str, str]:
        """The `x-ratelimit-*` headers: what Redis had left after the grant plus what is left here (the
        limits and resets are those of the grant, built once; only the remaining counts change)."""
        lv = self.levels
        if not self.fixed:
            self.fixed = rate_headers(self.limits, lv)
        out = self.fixed.copy()
        if "x-ratelimit-remaining-requests" in out:
            out["x-ratelimit-remaining-requests"] = str(lv.requests_left + _left(self.requests))
        if "x-ratelimit-remaining-tokens" in out:
            out["x-ratelimit-remaining-tokens"] = str(lv.tokens_left + _left(self.tokens))
        return out


class Allowances:
    """The allowances of one process, by key id, and the slots of ended ones Redis has not freed yet."""

    def __init__(self, config: LimitsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._by_key: dict[str, Allowance] = {}
        self.unfree: dict[str, set[str]] = {}
        self.pending: dict[str, asyncio.Future[None]] = {}  # keys with a call to Redis out (call_out)

    @contextlib.contextmanager
    def call_out(self, key_id: str) -> Iterator[None]:
        """While a call to Redis for this key is out, other requests of the key wait for the allowance
        it brings instead of each making a call of their own."""
        if key_id in self.pending:
            yield
            return
        self.pending[key_id] = done = asyncio.get_running_loop().create_future()
        try:
            yield
        finally:
            del self.pending[key_id]
            done.set_result(None)

    def covering(self, key_id: str, demand: Demand, limits: KeyLimits, month: int) -> Allowance | None:
        allow = self._by_key.get(key_id)
        return allow if allow is not None and allow.covers(demand, limits, month, self._clock()) else None

    def get(self, key_id: str) -> Allowance | None:
        return self._by_key.get(key_id)

    def pop(self, key_id: str) -> Allowance | None:
        return self._by_key.pop(key_id, None)

    def ask(self, limits: KeyLimits, demand: Demand, running: int, old: Allowance | None, *,
            top_up: bool = False) -> Ask:
        """The allowance to ask for with an admission in Redis: twice the last one while the key used it
        up within its time, one request's worth otherwise; slots for twice the requests running. The
        old one's free slots go back with it, except for a top-up (the old one stays)."""
        free = tuple(old.slots) if old is not None and not top_up else ()
        most = self._config.allowance_requests
        if not most:
            return Ask(free=free)
        block = min(most, 2 * old.block) if old is not None and self._clock() < old.expires else 1
        slots = 0
        if limits.max_concurrent_requests is not None:  # free slots for twice the requests running, in all
            slots = max(0, min(most, 2 * (running + 1)) - (len(old.slots) if old is not None and top_up else 0))
        return Ask(block, block * demand.tokens, block * demand.micro_usd, slots, self._config.allowance_share, free)

    def install(self, key_id: str, limits: KeyLimits, month: int, ask: Ask, grant: Grant, levels: Levels,
                lease: str, spare: Demand | None = None) -> Allowance | None:
        """Keep what Redis granted with an admission (and, for a top-up, the `spare` admitted request
        itself with its slot); the allowance it replaces (to end) or None."""
        if spare is not None:
            grant = Grant(grant.requests + 1, grant.tokens + spare.tokens, grant.month_tokens + spare.tokens,
                          grant.micro_usd + spare.micro_usd, grant.slots)
        allow = Allowance.granted(limits, month, self._clock() + self._config.allowance_seconds, ask.requests,
                                  grant, levels)
        allow.slots = [f"{lease}:{i}" for i in range(1, grant.slots + 1)]
        if spare is not None and lease:
            allow.slots.append(lease)
        have = self._by_key.get(key_id)  # a top-up, or a concurrent admission of the same key
        if have is not None and have.limits == limits and have.month == month and self._clock() < have.expires:
            have.merge(allow)
            return None
        self._by_key[key_id] = allow
        return have

    def expired(self) -> Iterator[tuple[str, Allowance]]:
        now = self._clock()
        for key_id, allow in list(self._by_key.items()):
            if now >= allow.expires:
                del self._by_key[key_id]
                yield key_id, allow

    def drain(self) -> Iterator[tuple[str, Allowance]]:
        while self._by_key:
            yield self._by_key.popitem()

    def held(self, key_id: str) -> list[str]:
        allow = self._by_key.get(key_id)
        return allow.slots if allow is not None else []

    def free_later(self, key_id: str, slots: Iterable[str]) -> None:
        """Slots this process no longer holds, to be freed in Redis by the maintenance loop (twice is harmless)."""
        self.unfree.setdefault(key_id, set()).update(slots)

    def trim_slots(self, key_id: str, keep: int) -> None:
        """Keep at most `keep` free slots for the key; the others are freed in Redis (maintenance)."""
        allow = self._by_key.get(key_id)
        if allow is not None and len(allow.slots) > keep:
            extra, allow.slots[:] = allow.slots[keep:], allow.slots[:keep]
            self.free_later(key_id, extra)

    def key_ids(self) -> set[str]:
        return set(self._by_key)
