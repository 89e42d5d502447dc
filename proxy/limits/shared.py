"""The fleet-wide counters in Redis: one script call per admission (or per allowance), one per reconciliation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from keystore import KeyLimits

from proxy.limits.answers import Levels
from proxy.limits.batch import ScriptBatch
from proxy.limits.scripts import ADMIT, RENEW, SEED, SETTLE, layout

MONTH_TTL_SECONDS = 3600  # this month's spend stays in Redis this long after the key's last request


@dataclass(frozen=True, slots=True)
class Carry:
    """What an instance admitted while Redis was unreachable, owed to the shared counters."""

    requests: int = 0
    tokens: int = 0
    month_tokens: int = 0
    micro_usd: int = 0

    def __add__(self, other: Carry) -> Carry:
        return Carry(self.requests + other.requests, self.tokens + other.tokens,
                     self.month_tokens + other.month_tokens, self.micro_usd + other.micro_usd)

    @property
    def empty(self) -> bool:
        return not (self.requests or self.tokens or self.month_tokens or self.micro_usd)

    def owed(self) -> Carry:
        """Only what is owed (the positive parts): what is given back is never given twice."""
        return Carry(max(0, self.requests), max(0, self.tokens), max(0, self.month_tokens), max(0, self.micro_usd))


NO_CARRY = Carry()
ADMITTED, RATE, BUDGET, SEED_NEEDED = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Ask:
    """An allowance asked for on top of an admission (allowance.py): up to this much of each limit,
    at most 1/share of what is left of it; `free` are slots given back before the decision."""

    requests: int = 0
    tokens: int = 0
    micro_usd: int = 0
    slots: int = 0
    share: int = 0  # 0: ask for nothing
    free: tuple[str, ...] = ()


NO_ASK = Ask()


@dataclass(frozen=True, slots=True)
class Grant:
    """What Redis granted of an `Ask` (already counted there as used)."""

    requests: int = 0
    tokens: int = 0
    month_tokens: int = 0
    micro_usd: int = 0
    slots: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int  # ADMITTED, RATE, BUDGET or SEED_NEEDED
    retry_ms: int
    month: int  # yyyymm on the Redis server's clock
    levels: Levels
    month_tokens: int
    month_micro_usd: int
    why: int  # RATE: 1 concurrency, 2 requests, 4 tokens (bits)
    grant: Grant = Grant()


def _int(value: Any) -> int:
    return int(value or 0)


def _micro(usd: float | None) -> int:
    return 0 if usd is None else round(usd * 1_000_000)


class SharedCounters:
    """Calls the scripts of scripts.py. Every method raises what redis-py raises when Redis fails."""

    def __init__(self, redis: Redis | RedisCluster, namespace: str, lease_seconds: float) -> None:
        self._ns = namespace
        self._lease_ms = int(lease_seconds * 1000)
        self._calls = ScriptBatch(redis)  # admits and settles of one loop turn share a round trip
        self._admit = redis.register_script(ADMIT)
        self._settle = redis.register_script(SETTLE)
        self._renew = redis.register_script(RENEW)
        self._seed = redis.register_script(SEED)

    async def admit(self, key_id: str, limits: KeyLimits, tokens: int, micro_usd: int, lease: str,
                    carry: Carry = NO_CARRY, *, probe: bool = False, ask: Ask = NO_ASK) -> Verdict:
        k = layout(self._ns, key_id)
        args: list[str | int] = [limits.requests_per_minute or 0, limits.tokens_per_minute or 0,
                limits.max_concurrent_requests or 0, limits.tokens_per_month or 0, _micro(limits.usd_per_month),
                tokens, micro_usd, lease, self._lease_ms, carry.requests, carry.tokens, carry.month_tokens,
                carry.micro_usd, "1" if probe else "0", MONTH_TTL_SECONDS, ask.requests, ask.tokens,
                ask.micro_usd, ask.slots, ask.share, *ask.free]
        r = await self._calls.call(self._admit, [k.rpm, k.tpm, k.conc, k.month], args)
        levels = Levels(_int(r[3]), _int(r[4]), _int(r[5]), _int(r[6]))
        grant = Grant(_int(r[10]), _int(r[11]), _int(r[12]), _int(r[13]), _int(r[14]))
        return Verdict(_int(r[0]), _int(r[1]), _int(r[2]), levels, _int(r[7]), _int(r[8]), _int(r[9]), grant)

    async def seed(self, key_id: str, month: int, tokens: int, micro_usd: int) -> None:
        await self._seed(keys=[layout(self._ns, key_id).month], args=[month, tokens, micro_usd, MONTH_TTL_SECONDS])

    async def settle(self, key_id: str, tpm: int, token_delta: int, micro_usd_delta: int, lease: str,
                     month: int, free: tuple[str, ...] = ()) -> None:
        k = layout(self._ns, key_id)
        args = [tpm, token_delta, micro_usd_delta, lease, month, *free]
        await self._calls.call(self._settle, [k.tpm, k.conc, k.month], args)

    async def renew(self, key_id: str, leases: list[str]) -> None:
        await self._renew(keys=[layout(self._ns, key_id).conc], args=[self._lease_ms, *leases])
