"""Frozen records the keystore hands out: keys, issuance results, audit events, revoke reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .record import ApiKey, StoredKey

__all__ = [
    "UNSET", "Actor", "ApiKey", "AuditEvent", "AuthStats", "FeedStats", "IssuedKey", "KeyPage", "KeystoreSnapshot",
    "Propagation", "StoredKey",
]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """The result of create/rotate: the only object that ever carries the full key."""

    key: ApiKey
    secret: str = field(repr=False)  # the full `th-…` key, shown once


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a mutation, for the audit log."""

    name: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    key_id: str | None
    request_id: str | None
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Propagation:
    """How far a revocation (or narrowing update) got before the call returned."""

    instances: int  # live instances announced in Redis
    confirmed: int  # of those, how many acknowledged the eviction in time
    published: bool  # False when Redis could not be reached (the Postgres backstop still applies)


@dataclass(frozen=True, slots=True)
class KeyPage:
    data: list[ApiKey]
    next_cursor: str | None


@dataclass(slots=True)
class AuthStats:
    local_hits: int = 0
    local_misses: int = 0
    negative_hits: int = 0
    redis_hits: int = 0
    redis_misses: int = 0
    db_reads: int = 0
    rechecks: int = 0
    rate_limited: int = 0


@dataclass(slots=True)
class FeedStats:
    messages: int = 0
    flushes: int = 0
    reconnects: int = 0
    backstop_evictions: int = 0
    polls: int = 0
    heartbeats: int = 0
    forged: int = 0  # messages and acknowledgements whose MAC was wrong
    last_lag_s: float = 0.0  # publish → local eviction, for the most recent message


@dataclass(frozen=True, slots=True)
class KeystoreSnapshot:
    """Every statistic of one `KeyStore`, taken at once (`KeyStore.snapshot()`): metrics and readiness."""

    auth: AuthStats  # the request path's counters (a copy)
    feed: FeedStats  # the revocation feed's counters (a copy)
    feed_up: bool
    floors_ready: bool  # version floors known: Redis records may be believed
    argon2_verifies: int
    argon2_pending: int
    cached_keys: int
    redis_failures: int
    redis_refused: int  # Redis records not believed (forged, stale, below the floor)
    fleet_secret_loaded: bool
    clock_offset_s: float  # Postgres clock minus this instance's clock
    clock_measured: bool
    clock_within_bound: bool  # measured and within `clock_max_offset_seconds`


UNSET: Any = object()  # "field not given" in updates, distinct from None ("clear it")
