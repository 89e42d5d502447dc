"""The issue's targets, checked against this run's figures (goals to report, not test assertions)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .report import Goal


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    target: str
    value: Callable[[Mapping[str, float]], float]
    met: Callable[[float], bool]
    unit: str


def _get(m: Mapping[str, float], key: str) -> float:
    return m.get(key, math.nan)


def _diff(a: str, b: str) -> Callable[[Mapping[str, float]], float]:
    return lambda m: _get(m, a) - _get(m, b)


def _ratio(a: str, b: str) -> Callable[[Mapping[str, float]], float]:
    return lambda m: _get(m, a) / _get(m, b)


# Issue 18's targets (the proxy measured on the governed path: auth, a limited key, metering, metrics
# and logs on) and the keystore's and fleet's goals from the earlier work.
SPECS = (
    _Spec("fake provider serves ≥ 10× the proxy (64 clients)", "≥ 10×",
          _ratio("direct.c64.rps", "proxy.c64.rps"), lambda v: v >= 10, "×"),
    _Spec("throughput per core at 16 clients vs bare relay (uvloop)", "≥ 1.0×",
          _ratio("proxy.c16.per_core", "relay.c16.per_core"), lambda v: v >= 1.0, "×"),
    _Spec("throughput per core at 64 clients vs bare relay (uvloop)", "≥ 1.0×",
          _ratio("proxy.c64.per_core", "relay.c64.per_core"), lambda v: v >= 1.0, "×"),
    _Spec("added p99 latency at 1 client over direct", "≤ 0.5 ms",
          _diff("proxy.c1.p99", "direct.c1.p99"), lambda v: v <= 0.5, " ms"),
    _Spec("added p50 latency at 1 client over bare relay", "≤ 0.1 ms",
          _diff("proxy.c1.p50", "relay.c1.p50"), lambda v: v <= 0.1, " ms"),
    _Spec("streaming TTFB over direct, 16 streams (p50)", "≤ 1 ms",
          _diff("proxy.s16.ttfb_p50_ms", "direct.s16.ttfb_p50_ms"), lambda v: v <= 1.0, " ms"),
    _Spec("stream CPU per chunk vs bare relay", "≤ 1.2×",
          _ratio("proxy.chunk_us", "relay.chunk_us"), lambda v: v <= 1.2, "×"),
    _Spec("--workers 2 against one worker (throughput)", "≥ 1.8×",
          lambda m: _get(m, "workers.ratio"), lambda v: v >= 1.8, "×"),
    _Spec("warm key check (KeyStore.authenticate)", "≤ 20 µs",
          lambda m: _get(m, "micro.warm_us"), lambda v: v <= 20, " µs"),
    _Spec("argon2 verifies per cold key (one instance, each first request sent twice)", "≤ 1",
          lambda m: _get(m, "cold.verifies_per_key"), lambda v: v <= 1.0, ""),
    _Spec("revocation visible on all three instances, p99", "≤ 20 ms",
          lambda m: _get(m, "revoke.p99"), lambda v: v <= 20, " ms"),
    _Spec("good traffic p99 with the wrong-secret flood / without", "< 2×",
          _ratio("flood.p99_with", "flood.p99_without"), lambda v: v < 2, "×"),
)


def evaluate(measured: Mapping[str, float]) -> list[Goal]:
    goals = []
    for spec in SPECS:
        value = spec.value(measured)
        if math.isnan(value):
            goals.append(Goal(spec.name, spec.target, "n/a", None))
        else:
            goals.append(Goal(spec.name, spec.target, f"{value:.2f}{spec.unit}", spec.met(value)))
    return goals
