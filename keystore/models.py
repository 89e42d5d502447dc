"""Frozen records the keystore hands out: keys, issuance results, audit events, revoke reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as everyone but the hasher sees it. Holds no secret and no hash."""

    id: str
    name: str
    account: str
    hint: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    allowed_models: tuple[str, ...]
    allowed_providers: tuple[str, ...]
    rotated_from: str | None
    version: int

    def status(self, now: float) -> str:
        if self.revoked_at is not None and self.revoked_at.timestamp() <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at.timestamp() <= now:
            return "expired"
        return "active"

    def usable_until(self) -> float:
        """Epoch second from which the key stops working (inf when it has no end)."""
        ends = [t.timestamp() for t in (self.expires_at, self.revoked_at) if t is not None]
        return min(ends, default=float("inf"))

    def allows(self, provider: str, model: str) -> bool:
        """`model` is the full `provider/model` name."""
        if self.allowed_providers and provider not in self.allowed_providers:
            return False
        return not self.allowed_models or model in self.allowed_models


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key plus its argon2 hash: what Postgres and the Redis record cache hold."""

    key: ApiKey
    secret_hash: str = field(repr=False)


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
