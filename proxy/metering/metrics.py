"""Prometheus series of metering: tokens and cost by provider and model (never by key: cardinality),
unmetered requests by reason, and what the bounded buffer held or dropped.

The per-request figures are plain numbers (`ModelUsage`, `count_unmetered`, `pending_cells`; see
proxy/runtime/plain.py), written without a lock; `sync()` copies them into Prometheus whenever the registry is read and once a second
(proxy/runtime/metrics.py). The rare events (drops, failed flushes) go to Prometheus directly."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.runtime.plain import PlainCounts, PlainGauge

_FIELDS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "usd")


class ModelUsage:
    """One model's usage as plain numbers, and how much of it is already in Prometheus."""

    __slots__ = (*_FIELDS, "_children", "_copied")

    def __init__(self, children: tuple[Counter, ...]) -> None:
        self.requests = self.input_tokens = self.cached_input_tokens = self.output_tokens = 0
        self.usd = 0.0
        self._children = children  # in the order of _FIELDS
        self._copied = [0.0] * len(_FIELDS)

    def sync(self) -> None:
        copied = self._copied
        for i, (field, child) in enumerate(zip(_FIELDS, self._children, strict=True)):
            value = getattr(self, field)
            if value > copied[i]:
                child.inc(value - copied[i])
                copied[i] = value


class UsageMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.tokens = Counter("tokenhub_usage_tokens", "Tokens the providers reported, by kind "
                              "(input, cached_input, output)", ["provider", "model", "kind"], registry=r)
        self.requests = Counter("tokenhub_usage_requests", "Forwarded requests counted by metering",
                                ["provider", "model"], registry=r)
        self.usd = Counter("tokenhub_usage_usd", "Cost from the configured prices (USD)", ["provider", "model"],
                           registry=r)
        self.unmetered = Counter("tokenhub_usage_unmetered", "Requests without a complete usage figure, by reason",
                                 ["provider", "reason"], registry=r)
        self.dropped_requests = Counter("tokenhub_usage_dropped_requests", "Requests whose usage was dropped: "
                                        "the in-memory buffer was full while Postgres was unreachable", registry=r)
        self.dropped_tokens = Counter("tokenhub_usage_dropped_tokens", "Tokens of the dropped requests", registry=r)
        self.flush_failures = Counter("tokenhub_usage_flush_failures", "Usage writes to Postgres that failed "
                                      "(retried by the next flush)", registry=r)
        # the aggregator's cells, as the meter last saw them
        self.pending_cells = PlainGauge(Gauge("tokenhub_usage_pending_cells", "Usage cells held in memory, not yet "
                                              "in Postgres", registry=r, multiprocess_mode="livesum"))
        self._models: dict[tuple[str, str], ModelUsage] = {}
        self._unmetered = PlainCounts(self.unmetered)

    def model(self, provider: str, model: str) -> ModelUsage:
        """The plain counters of `provider`'s `model` (provider/model), made once."""
        found = self._models.get((provider, model))
        if found is None:
            found = self._models[provider, model] = ModelUsage((
                self.requests.labels(provider, model), self.tokens.labels(provider, model, "input"),
                self.tokens.labels(provider, model, "cached_input"), self.tokens.labels(provider, model, "output"),
                self.usd.labels(provider, model)))
        return found

    def count_unmetered(self, provider: str, reason: str) -> None:
        self._unmetered.add((provider, reason))

    def sync(self) -> None:
        """Copy the usage counted since the last call, and the pending cells."""
        for usage in self._models.values():
            usage.sync()
        self._unmetered.sync()
        self.pending_cells.sync()
