"""The injected clock tests move by hand."""

from __future__ import annotations

import time

from keystore import Clock


class FakeClock(Clock):
    """A clock that starts at real time and moves only when told."""

    def __init__(self) -> None:
        self.t = float(int(time.time()))  # whole seconds: Postgres keeps microseconds, floats do not

    def time(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
