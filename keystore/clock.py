"""Time for the keystore: the local clock (injectable for tests) and Postgres time derived from it.

Time that decides a key's fate (revocation, grace ends, expiry) is Postgres time. Each instance
measures its offset to the Postgres clock (`ClockSync.measure`: one `clock_timestamp()` read,
corrected by half the round trip) and adds it to its own clock, so a skewed instance still judges a
key the way Postgres would. The local clock alone times local things: cache lifetimes and windows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

log = logging.getLogger(__name__)


class Clock:
    """The real clock. Tests pass a subclass whose `time()` they control."""

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)


class ClockSync(Clock):
    """Postgres time as this instance knows it: the local clock plus the last measured offset."""

    def __init__(self, local: Clock, *, warn_offset: float, max_offset: float) -> None:
        self.local = local
        self.offset = 0.0  # Postgres clock minus local clock, seconds
        self.uncertainty = float("inf")  # half the round trip of the last measurement
        self.measured = False
        self._warn, self._max = warn_offset, max_offset

    def time(self) -> float:
        return self.local.time() + self.offset

    @property
    def within_bound(self) -> bool:
        """False until measured, and while the offset exceeds the configured bound."""
        return self.measured and abs(self.offset) <= self._max

    async def measure(self, server_time: Callable[[], Awaitable[float]]) -> float:
        """Read Postgres' clock once and adopt the offset. Raises what `server_time` raises."""
        before = self.local.time()
        server = await server_time()
        after = self.local.time()
        self.offset = server - (before + after) / 2
        self.uncertainty = max(0.0, after - before) / 2
        self.measured = True
        if abs(self.offset) > self._max:
            log.error("clock offset to Postgres is %+.3fs, past the %.1fs bound: this instance reports not "
                      "ready until it is fixed (key decisions use Postgres time meanwhile)", self.offset, self._max)
        elif abs(self.offset) > self._warn:
            log.warning("clock offset to Postgres is %+.3fs (warning above %.1fs); correcting by it",
                        self.offset, self._warn)
        return self.offset
