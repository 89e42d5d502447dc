"""Old import path: the recording fake provider lives in `tests/support/fakes.py`."""

from tests.support.fakes import FakeProvider, Received, canned, stalling

__all__ = ["FakeProvider", "Received", "canned", "stalling"]
