"""`Limiter`: one per process. `reserve()` before a request goes to the provider, `finish()` after.

Order of work for a request of a key with limits (a key without any pays one attribute read):

1. `max_tokens_per_request`: the request's own cap (max_tokens, max_completion_tokens, max_output_tokens)
   above the key's → 400 naming the field. No Redis involved.
2. The demand: tokens and micro-USD reserved (demand.py).
3. An allowance this process holds for the key (allowance.py) covers the request: admitted here.
   Otherwise one script call in Redis (scripts.py ADMIT) decides everything on the server's clock and,
   when it admits, takes a request from the requests bucket, the reservation from the tokens bucket and
   the month, and a concurrency lease, plus the next allowance. A missing month is seeded from the
   Postgres usage rollups first.
4. Redis failing or slow (bounded by `[redis] timeout_seconds`): the `[limits] fallback` decides —
   the local share (local.py), open, or closed — for `retry_redis_seconds`, then Redis is tried again.
5. After the answer, `finish()` corrects the reservation to the metered figure and frees the lease: in
   the key's allowance when it can, otherwise in a background task (one script call), so neither a
   client's disconnect nor the reply's latency waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from keystore import ApiKey, KeyLimits

from proxy.errors import ServiceUnavailable
from proxy.limits.allowance import Allowance, Allowances
from proxy.limits.answers import MaxTokensExceeded, over_budget, rate_headers, rate_limited
from proxy.limits.demand import MAX_TOKEN_FIELDS, Demand, PriceLike, demand_of
from proxy.limits.local import LocalCounters, MonthSpend
from proxy.limits.metrics import LimitsMetrics
from proxy.limits.settings import LimitsConfig
from proxy.limits.shared import ADMITTED, BUDGET, RATE, SEED_NEEDED, Ask, Carry, SharedCounters, Verdict
from proxy.limits.tickets import Ticket, counted, deltas, month_now, month_start
from proxy.metering.tap import Metered

log = logging.getLogger(__name__)
_REDIS_FAILED = (RedisError, OSError, TimeoutError)
MonthUsage = Callable[[str, datetime], Awaitable[tuple[int, int]]]  # (key id, month start) → tokens, micro-USD
_WHY = {1: "concurrent requests", 2: "requests per minute", 4: "tokens per minute"}


class Limiter:
    def __init__(self, redis: Redis | RedisCluster | None, namespace: str, config: LimitsConfig, *,
                 month_usage: MonthUsage | None = None, redis_timeout: float = 0.25,
                 metrics: LimitsMetrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.namespace = namespace
        self._shared = None if redis is None else SharedCounters(redis, namespace, config.lease_seconds)
        self._local = LocalCounters(config.fallback_instances)
        self._month_usage = month_usage
        self._timeout = redis_timeout
        self._down_until = 0.0
        self._running: dict[str, int] = {}  # this instance's requests in flight, per key
        self._leases: dict[str, set[str]] = {}  # their Redis leases, renewed by `maintain()`
        self._carry_limits: dict[str, KeyLimits] = {}
        self._allow = Allowances(config, clock)  # what this process may admit without asking Redis
        self._tasks: set[asyncio.Task[None]] = set()
        self.degraded_admissions = 0  # requests decided by the fallback
        self._metrics = metrics

    @property
    def redis_up(self) -> bool:
        return self._shared is not None and time.monotonic() >= self._down_until

    # -- before the provider ----------------------------------------------------------------------

    async def reserve(self, key: ApiKey, price: PriceLike | None, body: Mapping[str, Any], size: int,
                      caps: Sequence[str] = MAX_TOKEN_FIELDS) -> Ticket | None:
        """Admit the request or raise MaxTokensExceeded (400), RateLimitExceeded (429), UsageLimitExceeded
        (402), or ServiceUnavailable (503, only with `fallback = "closed"`). None: nothing to count.

        `body` is the JSON request (`size` bytes), `caps` the fields where its endpoint takes max tokens."""
        limits = key.limits
        if limits is None:
            return None
        try:
            demand = demand_of(body, size, limits, price, self.config, caps)
        except MaxTokensExceeded as exc:
            exc.headers.update(await self._levels(key.id, limits))
            raise
        if not counted(limits):
            return None
        ticket = self._from_allowance(key.id, limits, demand)
        for _ in range(4):  # a call for this key is out: what it brings back may cover this request too
            if ticket is not None or (pending := self._allow.pending.get(key.id)) is None:
                break
            await asyncio.shield(pending)
            ticket = self._from_allowance(key.id, limits, demand)
        if ticket is not None:
            return ticket
        lease = os.urandom(8).hex() if limits.max_concurrent_requests is not None else ""
        verdict, shared = await self._decide(key.id, limits, demand, lease)
        self._count(verdict, shared)
        if verdict is None:  # fail-open: admitted, counted nowhere
            return Ticket(key.id, limits, demand, "", 0, shared=False, counted=False)
        if verdict.status == RATE:
            why = ", ".join(w for bit, w in _WHY.items() if verdict.why & bit)
            raise rate_limited(limits, verdict.levels, verdict.retry_ms, why)
        if verdict.status == BUDGET:
            raise over_budget(limits, verdict.levels)
        self._running[key.id] = self._running.get(key.id, 0) + 1
        if shared and lease:
            self._leases.setdefault(key.id, set()).add(lease)
        allow = self._allow.get(key.id) if shared else None  # granted with this admission: count its rest
        return Ticket(key.id, limits, demand, lease, verdict.month, shared,
                      headers=allow.headers() if allow is not None else rate_headers(limits, verdict.levels))

    def _from_allowance(self, key_id: str, limits: KeyLimits, demand: Demand) -> Ticket | None:
        """Admitted from this process's allowance for the key, if it covers the request (and a top-up
        started when it runs low), or None."""
        allow = self._allow.covering(key_id, demand, limits, month_now())
        if allow is None:
            return None
        lease = allow.take(demand)
        self._running[key_id] = self._running.get(key_id, 0) + 1
        if lease:
            self._leases.setdefault(key_id, set()).add(lease)
        if self._metrics is not None:
            self._metrics.decided("admitted", "allowance")
        if key_id not in self._allow.pending and allow.low(demand):
            self._background(self._top_up(key_id, limits, demand))
        return Ticket(key_id, limits, demand, lease, allow.month, True, headers=allow.headers())

    async def _levels(self, key_id: str, limits: KeyLimits) -> dict[str, str]:
        """The x-ratelimit-* headers of a key with per-minute limits, without taking anything."""
        if self._shared is None or not self.redis_up or (limits.requests_per_minute is None
                                                          and limits.tokens_per_minute is None):
            return {}
        try:
            async with asyncio.timeout(self._timeout):
                v = await self._shared.admit(key_id, replace(limits, tokens_per_month=None, usd_per_month=None),
                                             0, 0, "", probe=True)
        except _REDIS_FAILED as exc:
            self._redis_failed(exc)
            return {}
        return rate_headers(limits, v.levels)

    def _count(self, verdict: Verdict | None, shared: bool) -> None:
        if self._metrics is None:
            return
        outcome = {RATE: "rate_limited", BUDGET: "over_budget"}.get(verdict.status if verdict else 0, "admitted")
        self._metrics.decided(outcome, "redis" if shared else "local" if verdict else "open")
        self._metrics.redis_up.set(1 if self.redis_up else 0)
        self._metrics.pending_carry.set(len(self._local.carry))

    async def _decide(self, key_id: str, limits: KeyLimits, demand: Demand, lease: str) -> tuple[Verdict | None, bool]:
        if self.redis_up:
            try:
                return await self._admit_shared(key_id, limits, demand, lease), True
            except _REDIS_FAILED as exc:
                self._redis_failed(exc)
        self.degraded_admissions += 1
        if self.config.fallback == "open":
            return None, False
        if self.config.fallback == "closed":
            raise ServiceUnavailable("Limits for this API key cannot be checked right now; retry shortly.",
                                     headers={"Retry-After": "1"})
        return await self._admit_local(key_id, limits, demand), False

    async def _admit_shared(self, key_id: str, limits: KeyLimits, demand: Demand, lease: str) -> Verdict:
        with self._allow.call_out(key_id):
            return await self._admit_shared_out(key_id, limits, demand, lease)

    async def _admit_shared_out(self, key_id: str, limits: KeyLimits, demand: Demand, lease: str) -> Verdict:
        assert self._shared is not None
        carry = self._local.take_carry(key_id)
        old = self._allow.pop(key_id)  # its rest is given back in this call, before it decides
        ask = self._allow.ask(limits, demand, self._running.get(key_id, 0), old)
        if old is not None:
            carry += old.rest(month_now(), limits)
        try:
            async with asyncio.timeout(self._timeout):
                v = await self._shared.admit(key_id, limits, demand.tokens, demand.micro_usd, lease, carry, ask=ask)
            if v.status == SEED_NEEDED:
                await self._seed(key_id, v.month)  # Postgres, bounded by its own timeouts
                # The rollups already hold what was metered while Redis was away: do not count it twice.
                carry = replace(carry, month_tokens=0, micro_usd=0)
                async with asyncio.timeout(self._timeout):
                    v = await self._shared.admit(key_id, limits, demand.tokens, demand.micro_usd, lease, carry,
                                                 ask=ask)
        except BaseException:
            # Redis may have run the call: what it owed is owed again (counted twice at worst: stricter);
            # what it gave back is not given again (lost at worst: stricter, never more permissive).
            self._local.add_carry(key_id, carry.owed())
            self._allow.free_later(key_id, ask.free)
            raise
        if limits.tokens_per_month is not None or limits.usd_per_month is not None:
            self._local.remember_month(key_id, MonthSpend(v.month, v.month_tokens, v.month_micro_usd))
        if v.status == ADMITTED and ask.share:
            self._install(key_id, limits, v, ask, lease)
        return v

    async def _top_up(self, key_id: str, limits: KeyLimits, demand: Demand) -> None:
        """In the background, before the key's allowance runs out: admit one more request like this one
        in Redis, with the next allowance on top, and add both to what this process holds."""
        assert self._shared is not None
        lease = os.urandom(8).hex() if limits.max_concurrent_requests is not None else ""
        ask = self._allow.ask(limits, demand, self._running.get(key_id, 0), self._allow.get(key_id), top_up=True)
        try:
            with self._allow.call_out(key_id):
                async with asyncio.timeout(self._timeout):
                    v = await self._shared.admit(key_id, limits, demand.tokens, demand.micro_usd, lease, ask=ask)
            if v.status == ADMITTED:  # else: nothing was taken; requests ask Redis themselves when it runs out
                self._install(key_id, limits, v, ask, lease, spare=demand)
        except _REDIS_FAILED as exc:
            self._redis_failed(exc)

    def _install(self, key_id: str, limits: KeyLimits, v: Verdict, ask: Ask, lease: str,
                 spare: Demand | None = None) -> None:
        """Keep what an admission in Redis granted; the allowance it replaces ends."""
        replaced = self._allow.install(key_id, limits, v.month, ask, v.grant, v.levels, lease, spare)
        if replaced is not None:
            self._end_allowance(key_id, replaced)

    def _end_allowance(self, key_id: str, allow: Allowance) -> None:
        """Give an allowance's month rest back (with the key's next call to Redis, or by `maintain()`). Its
        per-minute rest is dropped: the key's limits may have changed since (the bucket refills it)."""
        rest = allow.rest(month_now())
        if not rest.empty:
            self._local.add_carry(key_id, rest)
            self._carry_limits.setdefault(key_id, allow.limits)
        if allow.slots:
            self._allow.free_later(key_id, allow.slots)

    async def _seed(self, key_id: str, month: int) -> None:
        assert self._shared is not None
        tokens, micro = (0, 0) if self._month_usage is None else await self._month_usage(key_id, month_start(month))
        async with asyncio.timeout(self._timeout):
            await self._shared.seed(key_id, month, tokens, micro)

    async def _admit_local(self, key_id: str, limits: KeyLimits, demand: Demand) -> Verdict:
        month = month_now()
        budget = limits.tokens_per_month is not None or limits.usd_per_month is not None
        if budget and not self._local.knows_month(key_id, month) and self._month_usage is not None:
            tokens, micro = await self._month_usage(key_id, month_start(month))
            self._local.remember_month(key_id, MonthSpend(month, tokens, micro))
        self._carry_limits[key_id] = limits
        return self._local.admit(key_id, limits, demand.tokens, demand.micro_usd, month,
                                 self._running.get(key_id, 0))

    def _redis_failed(self, exc: BaseException) -> None:
        if self.redis_up:
            log.warning("limits: Redis failed (%s: %s); using the %s fallback for %.1fs", type(exc).__name__,
                        exc, self.config.fallback, self.config.retry_redis_seconds)
        self._down_until = time.monotonic() + self.config.retry_redis_seconds
        for key_id, allow in self._allow.drain():  # decided by the fallback now; given back later
            self._end_allowance(key_id, allow)

    # -- after the provider -----------------------------------------------------------------------

    def finish(self, ticket: Ticket | None, metered: Metered | None, *, sent: bool = True) -> None:
        """Correct the reservation to the metered figure and free the lease (in the background).
        `sent=False`: the request never left (no connection to the provider): nothing was used."""
        if ticket is None or not ticket.counted:
            return
        self._release(ticket)
        demand = ticket.demand
        tokens, micro = deltas(demand, metered) if sent else (-demand.tokens, -demand.micro_usd)
        if not ticket.shared:
            self._local.correct(ticket.key_id, ticket.limits, tokens, micro, ticket.month)
            return
        lease = ticket.lease
        allow = self._allow.get(ticket.key_id)
        if allow is not None and allow.month == ticket.month and allow.limits == ticket.limits:
            if lease:  # the slot stays this process's, free for the key's next request
                allow.slots.append(lease)
                lease = ""
            if allow.absorb(tokens, micro):
                tokens = micro = 0
        if tokens or micro or lease:
            self._background(self._settle(ticket, tokens, micro, lease))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, ticket: Ticket) -> None:
        left = self._running.get(ticket.key_id, 1) - 1
        if left:
            self._running[ticket.key_id] = left
        else:
            self._running.pop(ticket.key_id, None)
        leases = self._leases.get(ticket.key_id)
        if leases is not None:
            leases.discard(ticket.lease)
            if not leases:
                del self._leases[ticket.key_id]

    async def _settle(self, ticket: Ticket, tokens: int, micro: int, lease: str) -> None:
        assert self._shared is not None
        try:
            async with asyncio.timeout(self._timeout):
                await self._shared.settle(ticket.key_id, ticket.limits.tokens_per_minute or 0, tokens, micro,
                                          lease, ticket.month)
        except _REDIS_FAILED as exc:
            self._redis_failed(exc)
            self._carry_limits[ticket.key_id] = ticket.limits
            self._local.add_carry(ticket.key_id, Carry(0, tokens, tokens, micro).owed())

    # -- background -------------------------------------------------------------------------------

    async def maintain(self) -> None:
        """Forever: renew this instance's leases and hand what the fallback admitted back to Redis."""
        while True:
            await asyncio.sleep(min(1.0, self.config.lease_seconds / 3))
            try:
                if self.redis_up:
                    await self.maintain_once()
            except Exception:  # a background loop must survive anything (e.g. Postgres down for a seed)
                log.warning("limits: maintenance failed; retrying", exc_info=True)
            if self._metrics is not None:
                self._metrics.redis_up.set(1 if self.redis_up else 0)
                self._metrics.pending_carry.set(len(self._local.carry))

    async def maintain_once(self) -> None:
        """Give back expired allowances, renew the slots held, free ended ones, hand the carries back."""
        assert self._shared is not None
        for key_id, allow in self._allow.expired():
            self._end_allowance(key_id, allow)
        for key_id in self._allow.key_ids():  # free slots beyond twice the requests running go back
            self._allow.trim_slots(key_id, 2 * (self._running.get(key_id, 0) + 1))
        try:
            for key_id in set(self._leases) | self._allow.key_ids():
                held = self._leases.get(key_id, set()) | set(self._allow.held(key_id))
                if held:
                    async with asyncio.timeout(self._timeout):
                        await self._shared.renew(key_id, sorted(held))
            for key_id in list(self._allow.unfree):
                await self._free_slots(key_id)
            for key_id in list(self._local.carry):
                await self._flush_carry(key_id)
        except _REDIS_FAILED as exc:
            self._redis_failed(exc)

    async def _free_slots(self, key_id: str) -> None:
        assert self._shared is not None
        free = self._allow.unfree.pop(key_id, set())
        try:
            async with asyncio.timeout(self._timeout):
                await self._shared.settle(key_id, 0, 0, 0, "", 0, tuple(sorted(free)))
        except BaseException:
            self._allow.free_later(key_id, free)
            raise

    async def _flush_carry(self, key_id: str) -> None:
        assert self._shared is not None
        limits = self._carry_limits.pop(key_id, None)
        carry = self._local.take_carry(key_id)
        if limits is None or carry.empty:
            return
        try:
            async with asyncio.timeout(self._timeout):
                v = await self._shared.admit(key_id, limits, 0, 0, "", carry, probe=True)
            if v.status == SEED_NEEDED:  # Redis lost the month: the rollups hold the metered part
                await self._seed(key_id, v.month)
                async with asyncio.timeout(self._timeout):
                    await self._shared.admit(key_id, limits, 0, 0, "", replace(carry, month_tokens=0, micro_usd=0),
                                             probe=True)
        except BaseException:
            self._local.add_carry(key_id, carry.owed())  # as in _admit_shared: never give back twice
            self._carry_limits.setdefault(key_id, limits)
            raise

    async def settled(self) -> None:
        """Wait until every reconciliation started so far has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def give_back(self) -> None:
        """End every allowance now and hand its rest and free slots back to Redis (shutdown, tests)."""
        await self.settled()
        for key_id, allow in self._allow.drain():
            self._end_allowance(key_id, allow)
        if self.redis_up:
            await self.maintain_once()

    async def close(self) -> None:
        """Wait (bounded) for the reconciliations still running, then give the allowances back."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout * 4):
                await self.give_back()
