"""Frozen records the keystore hands out: keys, issuance results, audit events, revoke reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .record import ApiKey, StoredKey

__all__ = ["UNSET", "Actor", "ApiKey", "AuditEvent", "IssuedKey", "KeyPage", "Propagation", "StoredKey"]


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


UNSET: Any = object()  # "field not given" in updates, distinct from None ("clear it")
