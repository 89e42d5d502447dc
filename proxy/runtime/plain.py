"""Plain numbers for the hot path, copied into Prometheus when it is read (proxy/runtime/metrics.py).

A Prometheus update takes a lock and, with workers, writes a memory-mapped file; the event loop is the
only writer of these, so a count or a value is a dict or attribute store. `sync()` adds each count's
increase since the last copy to its labelled counter, and sets the gauge.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge


class PlainCounts:
    """Counts by label values for one labelled Prometheus counter."""

    def __init__(self, counter: Counter, known: Iterable[tuple[str, ...]] = ()) -> None:
        self._counter = counter
        self._children = {labels: counter.labels(*labels) for labels in known}  # their series start at 0
        self._counts: dict[tuple[str, ...], int] = {}
        self._copied: dict[tuple[str, ...], int] = {}

    def add(self, labels: tuple[str, ...]) -> None:
        counts = self._counts
        counts[labels] = counts.get(labels, 0) + 1

    def sync(self) -> None:
        for labels, count in self._counts.items():
            copied = self._copied.get(labels, 0)
            if count > copied:
                child = self._children.get(labels)
                if child is None:
                    child = self._children[labels] = self._counter.labels(*labels)
                child.inc(count - copied)
                self._copied[labels] = count


class PlainGauge:
    """A gauge's value as a plain number, set like a Prometheus gauge but without its lock."""

    __slots__ = ("_gauge", "value")

    def __init__(self, gauge: Gauge, value: float = 0) -> None:
        self._gauge, self.value = gauge, value

    def set(self, value: float) -> None:
        self.value = value

    def sync(self) -> None:
        self._gauge.set(self.value)
