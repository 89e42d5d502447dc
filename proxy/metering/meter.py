"""`Meter`: one per process. Makes a `MeteringTap` for each forwarded request, prices and counts its
figure (aggregator, Prometheus), and writes the rollups to Postgres every `flush_seconds` and at drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from aiohttp import web

from keystore import Clock, StorageUnavailable

from proxy.config import ProviderConfig
from proxy.metering.aggregate import Aggregator
from proxy.metering.metrics import UsageMetrics
from proxy.metering.parsers import UsageFormat
from proxy.metering.settings import MeteringConfig
from proxy.metering.tap import Metered, MeteringTap
from proxy.metering.usage import Price, Usage

log = logging.getLogger(__name__)
METERED = web.RequestKey("metered", Metered)  # the request's figure, for the access log
_BATCH_IDS_KEPT_SECONDS = 86400.0


def ask_for_usage(body: dict[str, Any]) -> bool:
    """Make a streamed request ask for its usage (`stream_options.include_usage`) when the client did
    not; True when the gateway asked, so the usage-only event is cut from the client's stream."""
    if body.get("stream") is not True:
        return False
    options = body.get("stream_options")
    if options is None:
        body["stream_options"] = {"include_usage": True}
        return True
    if isinstance(options, dict) and options.get("include_usage") is not True:
        body["stream_options"] = options | {"include_usage": True}
        return True
    return False  # asked already, or a malformed value the provider will answer itself


def prices_of(providers: Iterable[ProviderConfig]) -> dict[tuple[str, str], Price]:
    return {(p.name, model): Price(Decimal(str(mp.input)), Decimal(str(mp.output)))
            for p in providers for model, mp in p.prices.items()}


class Meter:
    def __init__(self, config: MeteringConfig, aggregator: Aggregator, metrics: UsageMetrics,
                 providers: Iterable[ProviderConfig], clock: Clock) -> None:
        self.config, self.aggregator, self.metrics, self.clock = config, aggregator, metrics, clock
        self.db = aggregator.db  # the admin API reads the rollups through it
        self._prices = prices_of(providers)
        aggregator.on_drop = self.dropped

    def tap(self, request: web.Request, key_id: str, provider: str, model: str, full: str, fmt: UsageFormat, *,
            strip: bool) -> MeteringTap:
        """A tap metering one request of `key_id` to `provider`'s `model` (`full`: provider/model)."""
        def record(metered: Metered) -> None:
            self.record(key_id, provider, full, metered)

        return MeteringTap(fmt, strip=strip, price=self._prices.get((provider, model)), record=record,
                           request=request, slot=METERED)

    def record(self, key_id: str, provider: str, full: str, metered: Metered) -> None:
        usage = metered.usage
        self.aggregator.add(key_id, full, self.clock.time(), usage, metered.usd, unmetered=metered.reason is not None)
        counts = self.metrics.model(provider, full)
        # plain numbers, no Prometheus call per request: UsageMetrics.sync copies them when it is read
        counts.requests += 1
        counts.input_tokens += usage.input_tokens
        counts.cached_input_tokens += usage.cached_input_tokens
        counts.output_tokens += usage.output_tokens
        if metered.usd:
            counts.usd += float(metered.usd)
        if metered.reason is not None:
            self.metrics.count_unmetered(provider, metered.reason.value)
        self.metrics.pending_cells.set(self.aggregator.cells)

    def dropped(self, usage: Usage) -> None:
        self.metrics.dropped_requests.inc(usage.requests)
        self.metrics.dropped_tokens.inc(usage.total_tokens)
        log.warning("usage buffer full (%d cells) while Postgres is unreachable: a request's usage was dropped",
                    self.aggregator.max_cells)

    async def flush(self) -> int:
        try:
            return await self.aggregator.flush()
        except StorageUnavailable:
            self.metrics.flush_failures.inc()
            raise
        finally:
            self.metrics.pending_cells.set(self.aggregator.cells)

    async def flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while True:
            await asyncio.sleep(self.config.flush_seconds)
            try:
                await self.flush()
                if loop.time() >= next_prune:
                    # A batch id only guards retries by the process that still holds the batch: a day is ample.
                    await self.db.prune_batches(_BATCH_IDS_KEPT_SECONDS)
                    next_prune = loop.time() + 3600
            except Exception as exc:  # noqa: BLE001 - a background loop must survive anything
                log.warning("usage flush failed, will retry (%d cells held): %s", self.aggregator.cells, exc)

    async def close(self) -> None:
        """The drain's last write: retried for up to `drain_flush_seconds` while Postgres is down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_flush_seconds
        while True:
            try:
                await self.flush()
                return
            except Exception as exc:  # noqa: BLE001 - report what is lost, whatever the failure
                if loop.time() >= deadline:
                    log.error("usage of %d cells could not be written before exit and is lost: %s",
                              self.aggregator.cells, exc)
                    return
                await asyncio.sleep(0.5)
