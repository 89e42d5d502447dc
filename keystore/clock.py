"""Wall-clock time for the keystore, injectable so tests can move time deterministically."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """The real clock. Tests pass a subclass whose `time()` they control."""

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)
