"""The `[metering]` config section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeteringConfig:
    enabled: bool = True  # false: no tap, no injection, nothing written (the benchmark's "metering off")
    flush_seconds: float = 10.0  # how often each instance writes its usage batch to Postgres
    max_cells: int = 100_000  # (key, model, hour) cells held while Postgres is down; beyond: dropped, counted
    inject_stream_usage: bool = True  # ask for stream usage when the client did not (and hide the answer)
    drain_flush_seconds: float = 10.0  # on shutdown, keep retrying the last write for this long

    def problems(self) -> list[str]:
        out = ["flush_seconds must be more than 0"] if self.flush_seconds <= 0 else []
        return out + (["max_cells must be at least 1"] if self.max_cells < 1 else [])
