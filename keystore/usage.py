"""Usage rollups in Postgres: batched writes (one statement each, exactly once) and the reads behind
`GET /admin/keys/{id}/usage` and `usage_this_month`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from .errors import InvalidInput
from .pg import _translated

GRANULARITIES = ("hour", "day", "month")
_SUMS = """sum(requests)::bigint AS requests, sum(unmetered_requests)::bigint AS unmetered_requests,
           sum(input_tokens)::bigint AS input_tokens, sum(cached_input_tokens)::bigint AS cached_input_tokens,
           sum(output_tokens)::bigint AS output_tokens, sum(usd) AS usd"""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One rollup cell's increase: a key's use of one model in one UTC hour."""

    key_id: str
    hour: datetime
    model: str
    requests: int
    unmetered_requests: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    usd: Decimal


@dataclass(frozen=True, slots=True)
class UsageTotals:
    requests: int = 0
    unmetered_requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One bucket of a usage series: its start, the model (when grouped by model) and the totals."""

    start: datetime
    model: str | None
    totals: UsageTotals


def _totals(row: asyncpg.Record) -> UsageTotals:
    return UsageTotals(requests=row["requests"] or 0, unmetered_requests=row["unmetered_requests"] or 0,
                       input_tokens=row["input_tokens"] or 0, cached_input_tokens=row["cached_input_tokens"] or 0,
                       output_tokens=row["output_tokens"] or 0, usd=row["usd"] or Decimal(0))


class UsageDatabase:
    """The usage statements, each bounded by `timeout` (pool acquire and query)."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def _acquire(self) -> asyncpg.Connection:
        async with asyncio.timeout(self._timeout):
            return await self._pool.acquire()

    @_translated
    async def write_batch(self, batch_id: uuid.UUID, rows: Sequence[UsageRow]) -> bool:
        """Add `rows` to the rollups unless batch `batch_id` was written before; one statement.

        Returns False when the batch had already been written (a retry after a lost answer). Rows of
        keys that no longer exist are skipped. Raises StorageUnavailable."""
        ordered = sorted(rows, key=lambda r: (r.key_id, r.hour, r.model))  # one lock order: no deadlocks
        conn = await self._acquire()
        try:
            done = await conn.fetchval(_WRITE_BATCH, batch_id, [r.key_id for r in ordered],
                                       [r.hour for r in ordered], [r.model for r in ordered],
                                       [r.requests for r in ordered], [r.unmetered_requests for r in ordered],
                                       [r.input_tokens for r in ordered], [r.cached_input_tokens for r in ordered],
                                       [r.output_tokens for r in ordered], [r.usd for r in ordered],
                                       timeout=self._timeout)
        finally:
            await self._pool.release(conn)
        return bool(done)

    @_translated
    async def prune_batches(self, keep_seconds: float) -> None:
        conn = await self._acquire()
        try:
            await conn.execute("DELETE FROM usage_batches WHERE at < now() - make_interval(secs => $1)",
                               keep_seconds, timeout=self._timeout)
        finally:
            await self._pool.release(conn)

    @_translated
    async def series(self, key_id: str, *, start: datetime, end: datetime, granularity: str,
                     by_model: bool) -> list[UsagePoint]:
        """Buckets of `granularity` (UTC) covering the hours in [start, end), oldest first; only
        buckets with use. Raises InvalidInput (bad granularity), StorageUnavailable."""
        if granularity not in GRANULARITIES:
            raise InvalidInput(f"granularity must be one of {', '.join(GRANULARITIES)}", field="granularity")
        model = "model" if by_model else "NULL::text"
        sql = (f"SELECT date_trunc('{granularity}', hour, 'UTC') AS start, {model} AS model, {_SUMS}"
               " FROM usage_hourly WHERE key_id = $1 AND hour >= $2 AND hour < $3"
               f" GROUP BY 1, 2 ORDER BY 1, 2")
        conn = await self._acquire()
        try:
            rows = await conn.fetch(sql, key_id, start, end, timeout=self._timeout)
        finally:
            await self._pool.release(conn)
        return [UsagePoint(start=r["start"], model=r["model"], totals=_totals(r)) for r in rows]

    @_translated
    async def totals_since(self, key_ids: Sequence[str], since: datetime) -> dict[str, UsageTotals]:
        """Each key's totals over the hours from `since` on (one query for a whole page of keys)."""
        conn = await self._acquire()
        try:
            rows = await conn.fetch(f"SELECT key_id, {_SUMS} FROM usage_hourly"
                                    " WHERE key_id = ANY($1::text[]) AND hour >= $2 GROUP BY key_id",
                                    list(key_ids), since, timeout=self._timeout)
        finally:
            await self._pool.release(conn)
        return {r["key_id"]: _totals(r) for r in rows}


# The batch id is inserted first; the rollup rows are added only if that insert happened, so a batch
# whose first attempt committed (but whose answer was lost) adds nothing the second time.
_WRITE_BATCH = """
WITH batch AS (
    INSERT INTO usage_batches (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id
), added AS (
    INSERT INTO usage_hourly AS h (key_id, hour, model, requests, unmetered_requests, input_tokens,
                                   cached_input_tokens, output_tokens, usd)
    SELECT u.* FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::bigint[], $6::bigint[],
                           $7::bigint[], $8::bigint[], $9::bigint[], $10::numeric[])
                    AS u(key_id, hour, model, requests, unmetered_requests, input_tokens,
                         cached_input_tokens, output_tokens, usd)
    WHERE EXISTS (SELECT 1 FROM batch) AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = u.key_id)
    ON CONFLICT (key_id, hour, model) DO UPDATE SET
        requests = h.requests + EXCLUDED.requests,
        unmetered_requests = h.unmetered_requests + EXCLUDED.unmetered_requests,
        input_tokens = h.input_tokens + EXCLUDED.input_tokens,
        cached_input_tokens = h.cached_input_tokens + EXCLUDED.cached_input_tokens,
        output_tokens = h.output_tokens + EXCLUDED.output_tokens,
        usd = h.usd + EXCLUDED.usd
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM batch)
"""
