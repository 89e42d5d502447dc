"""TokenHub keystore: keys in Postgres, cached in Redis and in-process, revoked over Redis pub/sub."""

from .clock import Clock
from .errors import (
    Conflict,
    DuplicateKey,
    ExpiredKey,
    InvalidInput,
    KeystoreError,
    MalformedKey,
    NotFound,
    RateLimited,
    RevokedKey,
    StorageUnavailable,
    UnknownKey,
)
from .hashing import Overloaded
from .limits import LIMIT_NAMES, MAX_COUNT, MAX_USD, NO_LIMITS, KeyLimits
from .models import UNSET, Actor, ApiKey, AuditEvent, IssuedKey, KeyPage, KeystoreSnapshot, Propagation
from .responses import ResponseOwner, ResponseOwners
from .service import STATUSES, KeyStore, migrate
from .settings import KeystoreSettings
from .usage import GRANULARITIES, UsageDatabase, UsagePoint, UsageRow, UsageTotals
from .verify import Hooks

__all__ = [
    "GRANULARITIES",
    "LIMIT_NAMES",
    "MAX_COUNT",
    "MAX_USD",
    "NO_LIMITS",
    "STATUSES",
    "UNSET",
    "Actor",
    "ApiKey",
    "AuditEvent",
    "Clock",
    "Conflict",
    "DuplicateKey",
    "ExpiredKey",
    "Hooks",
    "InvalidInput",
    "IssuedKey",
    "KeyLimits",
    "KeyPage",
    "KeyStore",
    "KeystoreError",
    "KeystoreSettings",
    "KeystoreSnapshot",
    "MalformedKey",
    "NotFound",
    "Overloaded",
    "Propagation",
    "RateLimited",
    "ResponseOwner",
    "ResponseOwners",
    "RevokedKey",
    "StorageUnavailable",
    "UnknownKey",
    "UsageDatabase",
    "UsagePoint",
    "UsageRow",
    "UsageTotals",
    "migrate",
]
