"""Prometheus metrics, in a registry owned by the app (no global state), rendered on the admin listener.

Several workers (`tokenhub serve --workers N`): a scrape reaches one worker, so every worker writes its
samples to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode; the supervisor
sets the variable for its workers) and whichever worker answers `/metrics` sums all of them. Counters
and histograms are summed over every worker that ever ran (a restarted worker's counts are kept, so
they never go backwards); gauges say how they combine (`livesum`, `livemin`, `livemax`).

The hot path makes no Prometheus call: each takes a lock and, with workers, writes a memory-mapped file.
It keeps plain numbers instead, written by the event loop alone: requests by route and status and their
latency (`RouteSeries`), the requests in flight, metering's usage (`UsageMetrics`), the limiter's
decisions (`LimitsMetrics`) and the keystore's counters. `sync()` copies their increase (and the gauges)
into the Prometheus metrics whenever the registry is read, so a scrape sees every request finished
before it, and, with several workers, once a second from each worker: a scrape answered by one worker
sees the others' requests within that second.
"""

from __future__ import annotations

import asyncio
import math
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from keystore import KeyStore

from proxy.limits.metrics import LimitsMetrics
from proxy.metering.metrics import UsageMetrics

# prometheus-client chooses its value storage from this variable when it is imported; we follow the
# same switch so the two can never disagree.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# A latency counts in the first bucket whose bound it does not exceed (Prometheus' `le`), `+Inf` last.
_BOUNDS = (*(float(b) for b in LATENCY_BUCKETS), math.inf)
_CACHE_LAYERS = (("local", "hit", "local_hits"), ("local", "miss", "local_misses"),
                 ("negative", "hit", "negative_hits"), ("redis", "hit", "redis_hits"),
                 ("redis", "miss", "redis_misses"), ("postgres", "read", "db_reads"),
                 ("local", "recheck", "rechecks"))
_FEED_COUNTERS = (("messages", "tokenhub_revocation_messages", "Revocation messages received"),
                  ("flushes", "tokenhub_revocation_flushes", "Local cache flushes on (re)subscribe"),
                  ("reconnects", "tokenhub_revocation_reconnects", "Revocation feed reconnections"),
                  ("backstop_evictions", "tokenhub_revocation_backstop_evictions",
                   "Evictions found by the Postgres backstop poll (a lost or late message)"))


def add_observations(child: Histogram, counts: Sequence[int], total: float) -> None:
    """Add `counts[i]` observations to bucket i of a labelled histogram child (each bucket's own count,
    not cumulative, `+Inf` last) and `total` to its sum, as that many `observe()` calls would.

    prometheus-client has no public call for this (its maintainers point to a custom collector, which
    multiprocess mode cannot read), so this is the one place that reaches into the child's `_buckets`
    and `_sum`: the values `observe()` increments, in memory or in the multiprocess files alike.
    tests/proxy/test_metrics_lockfree.py compares it with `observe()` and fails if they change.
    """
    buckets = child._buckets
    if len(buckets) != len(counts):
        raise ValueError(f"{len(counts)} bucket counts for a histogram of {len(buckets)} buckets")
    for value, count in zip(buckets, counts, strict=True):
        if count:
            value.inc(count)
    child._sum.inc(total)


class RouteSeries:
    """One route's finished requests as plain numbers: the count by status, the latency buckets' own
    counts and the latency sum; and how much of them is already in Prometheus."""

    __slots__ = ("_copied", "_copied_buckets", "_copied_seconds", "buckets", "by_status", "name", "seconds")

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * len(_BOUNDS)
        self.seconds = 0.0
        self._copied: dict[int, int] = {}
        self._copied_buckets = [0] * len(_BOUNDS)
        self._copied_seconds = 0.0

    def add(self, status: int, seconds: float) -> None:
        by_status = self.by_status
        by_status[status] = by_status.get(status, 0) + 1
        self.buckets[bisect_left(_BOUNDS, seconds)] += 1
        self.seconds += seconds

    def sync(self, requests: Counter, latency: Histogram) -> None:
        copied = self._copied
        for status, count in self.by_status.items():
            if count > copied.get(status, 0):
                requests.labels(self.name, str(status)).inc(count - copied.get(status, 0))
                copied[status] = count
        if self.buckets != self._copied_buckets:
            new = [now - before for now, before in zip(self.buckets, self._copied_buckets, strict=True)]
            add_observations(latency.labels(self.name), new, self.seconds - self._copied_seconds)
            self._copied_buckets, self._copied_seconds = list(self.buckets), self.seconds


class _SyncFirst:
    """Registered first in the registry, so that every read of it (a scrape, `get_sample_value`) syncs
    before the metrics are collected. It has no samples of its own."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterable[Metric]:
        self._sync()
        return ()


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = r = CollectorRegistry()
        r.register(_SyncFirst(self.sync))
        self.usage = UsageMetrics(r)  # metering: tokens and cost by provider and model
        self.limits = LimitsMetrics(r)  # the limiter: decisions, Redis up, pending carries
        self._requests = Counter("tokenhub_requests", "Requests by route and status", ["route", "status"],
                                 registry=r)
        self._latency = Histogram("tokenhub_request_duration_seconds", "Request latency (to the last byte)",
                                  ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self._in_flight = Gauge("tokenhub_requests_in_flight", "Requests being handled (streams included)",
                                registry=r, multiprocess_mode="livesum")
        self.key_cache = Counter("tokenhub_key_cache", "Key lookups by cache layer and outcome",
                                 ["layer", "outcome"], registry=r)
        self.argon2 = Counter("tokenhub_argon2_verifications", "argon2 verifications run", registry=r)
        self.rate_limited = Counter("tokenhub_auth_rate_limited", "Verifications refused for too many failures",
                                    registry=r)
        self.feed = {attr: Counter(name, doc, registry=r) for attr, name, doc in _FEED_COUNTERS}
        self.cached_keys = Gauge("tokenhub_cached_keys", "Verified keys in the in-process caches (all workers)",
                                 registry=r, multiprocess_mode="livesum")
        self.feed_up = Gauge("tokenhub_revocation_feed_up",
                             "1 while the revocation subscription is live (with workers: in every worker)",
                             registry=r, multiprocess_mode="livemin")
        self.revocation_lag = Gauge("tokenhub_revocation_lag_seconds",
                                    "Publish-to-eviction lag of the most recent revocation message",
                                    registry=r, multiprocess_mode="livemax")
        self.clock_offset = Gauge("tokenhub_clock_offset_seconds",
                                  "This instance's clock offset to Postgres (Postgres minus local; corrected by)",
                                  registry=r, multiprocess_mode="livemax")
        self.redis_refused = Counter("tokenhub_redis_records_refused",
                                     "Redis key records not believed (bad MAC, too old, below the version floor)",
                                     registry=r)
        self.in_flight = 0  # requests being handled: the access middleware counts them up and down
        self._routes: dict[AbstractResource | None, RouteSeries] = {}
        self._by_name: dict[str, RouteSeries] = {}
        self._store: KeyStore | None = None
        self._seen: dict[str, int] = {}

    def bind_keystore(self, store: KeyStore | None) -> None:
        """Also the last copy of a stopping worker: storage_ctx unbinds after the drain."""
        self.sync()  # what the previous store counted is kept
        self._store, self._seen = store, {}
        self.sync()

    def sync(self) -> None:
        """Copy into Prometheus what the hot path counted since the last call, and the gauges' values."""
        for series in self._by_name.values():
            series.sync(self._requests, self._latency)
        self._in_flight.set(self.in_flight)
        self.usage.sync()
        self.limits.sync()
        self._sync_keystore()

    def _sync_keystore(self) -> None:
        store = self._store
        if store is None:
            return
        snap = store.snapshot()
        stats, feed = snap.auth, snap.feed
        for layer, outcome, attr in _CACHE_LAYERS:
            self._advance(self.key_cache.labels(layer, outcome), attr, getattr(stats, attr))
        self._advance(self.argon2, "argon2", snap.argon2_verifies)
        self._advance(self.rate_limited, "rate_limited", stats.rate_limited)
        for attr, counter in self.feed.items():
            self._advance(counter, "feed." + attr, getattr(feed, attr))
        self.cached_keys.set(snap.cached_keys)
        self.feed_up.set(1 if snap.feed_up else 0)
        self.revocation_lag.set(feed.last_lag_s)
        self.clock_offset.set(snap.clock_offset_s)
        self._advance(self.redis_refused, "redis_refused", snap.redis_refused)

    def _advance(self, counter: Counter, name: str, value: int) -> None:
        delta = value - self._seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)
            self._seen[name] = value

    async def sync_forever(self, interval: float = 1.0) -> None:
        """With several workers, the worker that answers a scrape cannot read the others' numbers."""
        while True:
            await asyncio.sleep(interval)
            self.sync()

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)  # its first collector syncs
        self.sync()  # this worker's files; the other workers write theirs once a second
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(combined)

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        """One finished request, with its true status (the access middleware, access.py, decides it)."""
        resource = request.match_info.route.resource
        series = self._routes.get(resource)
        if series is None:
            series = self._route(resource)
        series.add(status, seconds)

    def _route(self, resource: AbstractResource | None) -> RouteSeries:
        """The series of a route, found once per resource (two resources of one path share it)."""
        name = resource.canonical if resource is not None else "unmatched"
        series = self._by_name.get(name)
        if series is None:
            series = self._by_name[name] = RouteSeries(name)
        self._routes[resource] = series
        return series
