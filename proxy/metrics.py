"""Prometheus metrics, in a registry owned by the app (no global state), rendered on the admin listener."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from keystore import KeyStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _KeystoreCollector(Collector):
    """Reads the keystore's own counters at scrape time; nothing on the request path."""

    def __init__(self) -> None:
        self.store: KeyStore | None = None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        store = self.store
        if store is None:
            return
        s = store.stats
        hits = CounterMetricFamily("tokenhub_key_cache_total", "Key lookups by cache layer and outcome",
                                   labels=["layer", "outcome"])
        for layer, outcome, value in (("local", "hit", s.local_hits), ("local", "miss", s.local_misses),
                                      ("negative", "hit", s.negative_hits), ("redis", "hit", s.redis_hits),
                                      ("redis", "miss", s.redis_misses), ("postgres", "read", s.db_reads)):
            hits.add_metric([layer, outcome], value)
        yield hits
        yield CounterMetricFamily("tokenhub_argon2_verifications_total", "argon2 verifications run",
                                  value=store.hasher.verifies)
        yield CounterMetricFamily("tokenhub_auth_rate_limited_total", "Verifications refused for too many failures",
                                  value=s.rate_limited)
        yield GaugeMetricFamily("tokenhub_cached_keys", "Verified keys in the in-process cache", value=len(store.local))
        yield GaugeMetricFamily("tokenhub_revocation_feed_up", "1 while the revocation subscription is live",
                                value=1 if store.feed_up else 0)
        feed = store.bus.stats
        yield CounterMetricFamily("tokenhub_revocation_messages_total", "Revocation messages received",
                                  value=feed.messages)
        yield CounterMetricFamily("tokenhub_revocation_flushes_total", "Local cache flushes on (re)subscribe",
                                  value=feed.flushes)
        yield GaugeMetricFamily("tokenhub_revocation_lag_seconds", "Publish-to-eviction lag of the last message",
                                value=feed.last_lag_s)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tokenhub_requests", "Requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("tokenhub_request_duration_seconds", "Request latency (to the last byte)",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._keystore = _KeystoreCollector()
        self.registry.register(self._keystore)

    def bind_keystore(self, store: KeyStore | None) -> None:
        self._keystore.store = store

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def metrics_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except asyncio.CancelledError:
                status = 499  # the client went away
                raise
            finally:
                route = request.match_info.route.resource
                name = route.canonical if route is not None else "unmatched"
                self.requests.labels(name, str(status)).inc()
                self.latency.labels(name).observe(time.perf_counter() - started)

        return metrics_mw
