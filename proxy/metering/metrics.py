"""Prometheus series of metering: tokens and cost by provider and model (never by key: cardinality),
unmetered requests by reason, and what the bounded buffer held or dropped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
        self.cells = Gauge("tokenhub_usage_pending_cells", "Usage cells held in memory, not yet in Postgres",
                           registry=r, multiprocess_mode="livesum")
