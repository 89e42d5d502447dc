"""Prometheus series of the limiter: decisions by outcome and by who decided (never by key: cardinality),
whether Redis answers, and how many keys still owe the shared counters what the fallback admitted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

OUTCOMES = ("admitted", "rate_limited", "over_budget")
DECIDERS = ("redis", "allowance", "local", "open")


class LimitsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.decisions = Counter("tokenhub_limits_decisions", "Requests of limited keys decided, by outcome "
                                 "and by who decided (redis: fleet-wide; allowance: this process, from its share taken from Redis ahead; local: this instance's share while "
                                 "Redis was unreachable; open: admitted uncounted)", ["outcome", "by"], registry=r)
        self.redis_up = Gauge("tokenhub_limits_redis_up", "1 while the limiter decides in Redis, 0 while its "
                              "fallback does", registry=r, multiprocess_mode="livemin")
        self.pending_carry = Gauge("tokenhub_limits_pending_carry_keys", "Keys whose fallback admissions are not "
                                   "yet added to the shared counters", registry=r, multiprocess_mode="livesum")
        self.redis_up.set(1)
        self._children = {(o, b): self.decisions.labels(o, b) for o in OUTCOMES for b in DECIDERS}

    def decided(self, outcome: str, by: str) -> None:
        self._children[outcome, by].inc()
