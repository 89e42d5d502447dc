"""Prometheus metrics, in a registry owned by the app (no global state), rendered on the admin listener.

Several workers (`tokenhub serve --workers N`): a scrape reaches one worker, so every worker writes its
samples to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode; the supervisor
sets the variable for its workers) and whichever worker answers `/metrics` sums all of them. Counters
and histograms are summed over every worker that ever ran (a restarted worker's counts are kept, so
they never go backwards); gauges say how they combine (`livesum`, `livemin`, `livemax`).

The keystore keeps plain integer counters on its hot path; `sync()` copies their increase into the
Prometheus metrics, at every scrape and (with several workers) once a second from each worker.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from keystore import KeyStore

from proxy.limits.metrics import LimitsMetrics
from proxy.metering.metrics import UsageMetrics

# prometheus-client chooses its value storage from this variable when it is imported; we follow the
# same switch so the two can never disagree.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_CACHE_LAYERS = (("local", "hit", "local_hits"), ("local", "miss", "local_misses"),
                 ("negative", "hit", "negative_hits"), ("redis", "hit", "redis_hits"),
                 ("redis", "miss", "redis_misses"), ("postgres", "read", "db_reads"),
                 ("local", "recheck", "rechecks"))
_FEED_COUNTERS = (("messages", "tokenhub_revocation_messages", "Revocation messages received"),
                  ("flushes", "tokenhub_revocation_flushes", "Local cache flushes on (re)subscribe"),
                  ("reconnects", "tokenhub_revocation_reconnects", "Revocation feed reconnections"),
                  ("backstop_evictions", "tokenhub_revocation_backstop_evictions",
                   "Evictions found by the Postgres backstop poll (a lost or late message)"))


class Metrics:
    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.registry = r = CollectorRegistry()
        self.usage = UsageMetrics(r)  # metering: tokens and cost by provider and model
        self.limits = LimitsMetrics(r)  # the limiter: decisions, Redis up, pending carries
        self.requests = Counter("tokenhub_requests", "Requests by route and status", ["route", "status"],
                                registry=r)
        self.latency = Histogram("tokenhub_request_duration_seconds", "Request latency (to the last byte)",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("tokenhub_requests_in_flight", "Requests being handled (streams included)",
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
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._store: KeyStore | None = None
        self._seen: dict[str, int] = {}

    def bind_keystore(self, store: KeyStore | None) -> None:
        self.sync()  # what the previous store counted is kept
        self._store, self._seen = store, {}
        self.sync()

    def sync(self) -> None:
        """Copy the keystore's counters (their increase since the last call) and gauges."""
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
        """With several workers, the worker that answers a scrape cannot read the others' keystores."""
        while True:
            await asyncio.sleep(interval)
            self.sync()

    def render(self) -> bytes:
        self.sync()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(combined)

    def _children(self, route: str, status: int) -> tuple[Any, Any]:
        """The labelled series for (route, status), looked up once: `labels()` takes a lock and
        builds a key on every call, and the set of routes and statuses is small."""
        found = self._series.get((route, status))
        if found is None:
            found = self._series[(route, status)] = (self.requests.labels(route, str(status)),
                                                      self.latency.labels(route))
        return found

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        """One finished request, with its true status (the access middleware, access.py, decides it)."""
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        counter, histogram = self._children(name, status)
        counter.inc()
        histogram.observe(seconds)
