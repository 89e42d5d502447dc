"""Prometheus series of the limiter: decisions by outcome and by who decided (never by key: cardinality),
whether Redis answers, and how many keys still owe the shared counters what the fallback admitted.

The limiter writes plain numbers (no lock per decision); `sync()` copies them into Prometheus whenever
the registry is read and once a second (proxy/runtime/metrics.py)."""

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
        self._redis_up = Gauge("tokenhub_limits_redis_up", "1 while the limiter decides in Redis, 0 while its "
                               "fallback does", registry=r, multiprocess_mode="livemin")
        self._pending_carry = Gauge("tokenhub_limits_pending_carry_keys", "Keys whose fallback admissions are not "
                                    "yet added to the shared counters", registry=r, multiprocess_mode="livesum")
        self.redis_up = PlainGauge(1)  # the limiter sets these two as it would set a Prometheus gauge
        self.pending_carry = PlainGauge(0)
        self._children = {(o, b): self.decisions.labels(o, b) for o in OUTCOMES for b in DECIDERS}
        self._counts = dict.fromkeys(self._children, 0)
        self._copied = dict.fromkeys(self._children, 0)
        self.sync()

    def decided(self, outcome: str, by: str) -> None:
        pair, counts = (outcome, by), self._counts
        counts[pair] = counts.get(pair, 0) + 1

    def sync(self) -> None:
        """Copy the decisions counted since the last call, and the gauges' values."""
        for pair, count in self._counts.items():
            copied = self._copied.get(pair, 0)
            if count > copied:
                child = self._children.get(pair)
                if child is None:  # a pair outside OUTCOMES × DECIDERS: its series starts with it
                    child = self._children[pair] = self.decisions.labels(*pair)
                child.inc(count - copied)
                self._copied[pair] = count
        self._redis_up.set(self.redis_up.value)
        self._pending_carry.set(self.pending_carry.value)


class PlainGauge:
    """A gauge's value as a plain number, set like a Prometheus gauge but without its lock."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def set(self, value: float) -> None:
        self.value = value
