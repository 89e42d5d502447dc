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
from .models import UNSET, Actor, ApiKey, AuditEvent, IssuedKey, KeyPage, KeystoreSnapshot, Propagation
from .responses import ResponseOwner, ResponseOwners
from .service import STATUSES, KeyStore, migrate
from .settings import KeystoreSettings
from .verify import Hooks

__all__ = [
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
    "migrate",
]
