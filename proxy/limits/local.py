"""The per-instance fallback while Redis is unreachable: each instance enforces its share of every limit.

Per-minute buckets and concurrency get `limit / share` (at least 1) on this instance. A monthly budget
gets `(budget - spend) / share`, where `spend` is the last figure Redis gave this instance (or the
Postgres usage rollups when it has none). Everything admitted here is remembered as a `Carry` and
added to the shared counters once Redis answers again, so recovery never hands out a fresh window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from keystore import KeyLimits

from proxy.limits.answers import Levels
from proxy.limits.shared import ADMITTED, BUDGET, NO_CARRY, RATE, Carry, Verdict


@dataclass(slots=True)
class _Bucket:
    level: float
    at: float


@dataclass(frozen=True, slots=True)
class MonthSpend:
    month: int
    tokens: int
    micro_usd: int


class LocalCounters:
    def __init__(self, share: int, timer: Callable[[], float] = time.monotonic) -> None:
        self._share = share
        self._timer = timer
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._base: dict[str, MonthSpend] = {}  # the spend Redis (or Postgres) last told this instance
        self._spent: dict[str, MonthSpend] = {}  # that, plus what this instance admitted since
        self.carry: dict[str, Carry] = {}

    def knows_month(self, key_id: str, month: int) -> bool:
        seen = self._spent.get(key_id)
        return seen is not None and seen.month == month

    def remember_month(self, key_id: str, spend: MonthSpend) -> None:
        self._base[key_id] = self._spent[key_id] = spend

    def _cap(self, limit: int) -> float:
        return max(1.0, limit / self._share)

    def _level(self, key_id: str, kind: str, limit: int) -> _Bucket:
        now, cap = self._timer(), self._cap(limit)
        b = self._buckets.setdefault((key_id, kind), _Bucket(cap, now))
        b.level, b.at = min(cap, b.level + (now - b.at) * cap / 60), now
        return b

    def admit(self, key_id: str, limits: KeyLimits, tokens: int, micro_usd: int, month: int,
              running: int) -> Verdict:
        """`running`: this instance's requests of this key in flight now."""
        if self._over_budget(key_id, limits, tokens, micro_usd, month):
            return Verdict(BUDGET, 0, month, self._levels(key_id, limits), 0, 0, 0)
        why, retry = 0, 0.0
        if limits.max_concurrent_requests is not None and running >= self._cap(limits.max_concurrent_requests):
            why, retry = 1, 1000.0
        for bit, kind, limit, need in ((2, "rpm", limits.requests_per_minute, 1),
                                       (4, "tpm", limits.tokens_per_minute, tokens)):
            if limit is not None:
                b, cap = self._level(key_id, kind, limit), self._cap(limit)
                short = min(need, cap) - b.level
                if short > 0:
                    why, retry = why | bit, max(retry, short * 60000 / cap)
        if why:
            return Verdict(RATE, int(retry) + 1, month, self._levels(key_id, limits), 0, 0, why)
        self._take(key_id, limits, tokens, micro_usd, month)
        return Verdict(ADMITTED, 0, month, self._levels(key_id, limits), 0, 0, 0)

    def _over_budget(self, key_id: str, limits: KeyLimits, tokens: int, micro_usd: int, month: int) -> bool:
        spent = self._spent.get(key_id, MonthSpend(month, 0, 0))
        base = self._base.get(key_id, spent)
        if limits.tokens_per_month is not None:
            allowed = base.tokens + (limits.tokens_per_month - base.tokens) / self._share
            if spent.tokens + tokens > allowed:
                return True
        if limits.usd_per_month is not None:
            budget = round(limits.usd_per_month * 1_000_000)
            allowed = base.micro_usd + (budget - base.micro_usd) / self._share
            if spent.micro_usd + micro_usd > allowed:
                return True
        return False

    def _take(self, key_id: str, limits: KeyLimits, tokens: int, micro_usd: int, month: int) -> None:
        if limits.requests_per_minute is not None:
            self._level(key_id, "rpm", limits.requests_per_minute).level -= 1
        if limits.tokens_per_minute is not None:
            self._level(key_id, "tpm", limits.tokens_per_minute).level -= tokens
        self.add_carry(key_id, Carry(1, tokens, tokens, micro_usd))
        self._add_spend(key_id, tokens, micro_usd, month)

    def _add_spend(self, key_id: str, tokens: int, micro_usd: int, month: int) -> None:
        s = self._spent.get(key_id)
        if s is not None and s.month == month:
            self._spent[key_id] = MonthSpend(month, s.tokens + tokens, s.micro_usd + micro_usd)

    def correct(self, key_id: str, limits: KeyLimits, token_delta: int, micro_usd_delta: int, month: int) -> None:
        """A locally admitted request's metered figure differs from its reservation by these deltas."""
        if limits.tokens_per_minute is not None:
            b = self._level(key_id, "tpm", limits.tokens_per_minute)
            b.level = min(self._cap(limits.tokens_per_minute), b.level - token_delta)
        self.add_carry(key_id, Carry(0, token_delta, token_delta, micro_usd_delta))
        self._add_spend(key_id, token_delta, micro_usd_delta, month)

    def add_carry(self, key_id: str, carry: Carry) -> None:
        self.carry[key_id] = self.carry.get(key_id, NO_CARRY) + carry

    def take_carry(self, key_id: str) -> Carry:
        return self.carry.pop(key_id, NO_CARRY)

    def _levels(self, key_id: str, limits: KeyLimits) -> Levels:
        out = [0, 0, 0, 0]
        for i, kind, limit in ((0, "rpm", limits.requests_per_minute), (2, "tpm", limits.tokens_per_minute)):
            if limit is not None:
                b, cap = self._level(key_id, kind, limit), self._cap(limit)
                out[i], out[i + 1] = max(0, int(b.level)), int(max(0.0, cap - b.level) * 60000 / cap)
        return Levels(*out)
