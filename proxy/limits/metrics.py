"""Prometheus series of the limiter: decisions by outcome and by who decided (never by key: cardinality),
whether Redis answers, and how many keys still owe the shared counters what the fallback admitted.

The limiter writes plain numbers (no lock per decision); `sync()` copies them into Prometheus whenever
the registry is read and once a second (proxy/runtime/plain.py, proxy/runtime/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.runtime.plain import PlainCounts, PlainGauge

OUTCOMES = ("admitted", "rate_limited", "over_budget")
DECIDERS = ("redis", "allowance", "local", "open")


class LimitsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.decisions = Counter("tokenhub_limits_decisions", "Requests of limited keys decided, by outcome "
                                 "and by who decided (redis: fleet-wide; allowance: this process, from its "
                                 "share taken from Redis ahead; local: this instance's share while Redis was "
                                 "unreachable; open: admitted uncounted)", ["outcome", "by"], registry=r)
        # The limiter sets these two as it would set a Prometheus gauge.
        self.redis_up = PlainGauge(Gauge("tokenhub_limits_redis_up", "1 while the limiter decides in Redis, 0 "
                                         "while its fallback does", registry=r, multiprocess_mode="livemin"), 1)
        self.pending_carry = PlainGauge(Gauge("tokenhub_limits_pending_carry_keys", "Keys whose fallback "
                                              "admissions are not yet added to the shared counters", registry=r,
                                              multiprocess_mode="livesum"))
        self._decided = PlainCounts(self.decisions, [(o, b) for o in OUTCOMES for b in DECIDERS])
        self.sync()

    def decided(self, outcome: str, by: str) -> None:
        self._decided.add((outcome, by))

    def sync(self) -> None:
        """Copy the decisions counted since the last call, and the gauges' values."""
        self._decided.sync()
        self.redis_up.sync()
        self.pending_carry.sync()
