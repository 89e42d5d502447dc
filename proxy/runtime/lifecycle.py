"""This instance's place in its life: starting, started (every dependency has been up once), draining.

One `Lifecycle` per proxy app (`state.LIFECYCLE`). Who moves it, and nothing else does:
- `watch_start` (run by `resources.start_watch_ctx`) marks it started the first time Postgres, Redis and the revocation feed are all up
  (the same `dependencies()` check `/readyz` reports), then stops watching;
- `Worker.drain()` (runtime/serve.py) marks it draining on SIGTERM.
`/readyz` and the auth middleware only read it: asking for readiness never changes it.
"""

from __future__ import annotations

import asyncio
import logging

from keystore import KeyStore

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.1  # how often, until started, the dependencies are checked


class Lifecycle:
    """starting → started → draining; each step happens once and never goes back."""

    __slots__ = ("_draining", "_started")

    def __init__(self) -> None:
        self._started = False
        self._draining = False

    @property
    def started(self) -> bool:
        """True once Postgres, Redis and the revocation feed have all been up (a later outage is degraded)."""
        return self._started

    @property
    def draining(self) -> bool:
        """True from SIGTERM on: readiness false, new requests refused."""
        return self._draining

    def mark_started(self) -> None:
        if not self._started:
            log.info("every dependency is up: started")
        self._started = True

    def drain(self) -> None:
        self._draining = True


async def dependencies(store: KeyStore) -> dict[str, bool]:
    """The readiness checks, by name: what `/readyz` reports and what starting waits for."""
    return {"postgres": await store.postgres_ok(), "redis": await store.redis_ok(),
            "revocation_feed": store.feed_up}


async def watch_start(lifecycle: Lifecycle, store: KeyStore, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Check the dependencies until they have all been up once, then mark the instance started."""
    while True:
        try:
            if all((await dependencies(store)).values()):
                break
        except Exception:  # a background loop must survive anything; readiness reports the cause
            log.exception("checking the dependencies failed")
        await asyncio.sleep(interval_s)
    lifecycle.mark_started()

