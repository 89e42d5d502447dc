"""Usage rollups in memory, written to Postgres in batches (one statement per batch, exactly once).

Every metered request adds to a cell (key, model, UTC hour) of the current batch; nothing touches
Postgres on the request path. `flush()` seals the current batch and writes every sealed batch in
order. A batch that fails (Postgres down) stays sealed and is retried as it is, under the same id, so
a write whose answer was lost is not counted twice. While Postgres is down cells keep adding up; the
number of cells held is bounded by `max_cells`, and a request that would need a new cell beyond it is
dropped and counted (`tokenhub_usage_dropped_requests_total`), never silently.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from keystore import UsageDatabase, UsageRow

from proxy.metering.usage import Usage

log = logging.getLogger(__name__)
CellKey = tuple[str, int, str]  # key id, hour (epoch seconds), model


class Cell:
    __slots__ = ("cached", "input", "output", "requests", "unmetered", "usd")

    def __init__(self) -> None:
        self.requests = self.unmetered = self.input = self.cached = self.output = 0
        self.usd = Decimal(0)

    def add(self, usage: Usage, usd: Decimal | None, unmetered: bool) -> None:
        self.requests += usage.requests
        self.unmetered += usage.requests if unmetered else 0
        self.input += usage.input_tokens
        self.cached += usage.cached_input_tokens
        self.output += usage.output_tokens
        if usd is not None:
            self.usd += usd


@dataclass
class Batch:
    cells: dict[CellKey, Cell] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def rows(self) -> list[UsageRow]:
        return [UsageRow(key_id=k, hour=datetime.fromtimestamp(h, UTC), model=m, requests=c.requests,
                         unmetered_requests=c.unmetered, input_tokens=c.input, cached_input_tokens=c.cached,
                         output_tokens=c.output, usd=c.usd) for (k, h, m), c in self.cells.items()]


@dataclass
class Dropped:
    requests: int = 0
    tokens: int = 0


class Aggregator:
    """`add()` on the request path (no I/O); `flush()` from a loop and from the drain."""

    def __init__(self, db: UsageDatabase, *, max_cells: int, on_drop: Callable[[Usage], None] | None = None) -> None:
        self.db = db
        self.max_cells = max_cells
        self._current = Batch()
        self._sealed: list[Batch] = []
        self._held = 0  # cells in sealed batches
        self._lock = asyncio.Lock()
        self.on_drop = on_drop
        self.dropped = Dropped()

    @property
    def cells(self) -> int:
        """Cells held in memory (current and unwritten batches)."""
        return self._held + len(self._current.cells)

    def add(self, key_id: str, model: str, at: float, usage: Usage, usd: Decimal | None, *,
            unmetered: bool = False) -> bool:
        """Count one request's usage. False when it was dropped (the buffer is full)."""
        cell_key = (key_id, int(at) - int(at) % 3600, model)
        cell = self._current.cells.get(cell_key)
        if cell is None:
            if self.cells >= self.max_cells:
                self.dropped.requests += usage.requests
                self.dropped.tokens += usage.total_tokens
                if self.on_drop is not None:
                    self.on_drop(usage)
                return False
            cell = self._current.cells[cell_key] = Cell()
        cell.add(usage, usd, unmetered)
        return True

    async def flush(self) -> int:
        """Write everything counted so far; returns the number of cells written.

        Raises StorageUnavailable (what was not written stays, and is retried by the next flush)."""
        async with self._lock:
            if self._current.cells:
                self._held += len(self._current.cells)
                self._sealed.append(self._current)
                self._current = Batch()
            written = 0
            while self._sealed:
                batch = self._sealed[0]
                if not await self.db.write_batch(batch.id, batch.rows()):
                    log.info("usage batch %s had been written already (a retried write)", batch.id)
                self._sealed.pop(0)
                self._held -= len(batch.cells)
                written += len(batch.cells)
            return written
