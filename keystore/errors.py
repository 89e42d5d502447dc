"""The keystore's exception tree: every failure a caller of `KeyStore` can see.

    KeystoreError
    ├── MalformedKey        the presented string is not a well-formed TokenHub key (no I/O was done)
    ├── UnknownKey          well-formed, but no such key id, or the secret does not match
    ├── RevokedKey          the secret matched, the key is revoked
    ├── ExpiredKey          the secret matched, the key is past its expiry
    ├── RateLimited         too many failed verifications for this key id; retry later
    ├── NotFound            an admin operation named a key id that does not exist
    ├── InvalidInput        an admin operation's argument is unacceptable (names the field)
    ├── Conflict            the key's state forbids the operation (rotating a revoked key)
    ├── DuplicateKey        a minted key id collided with an existing one
    └── StorageUnavailable  Postgres (and the caches) could not answer; the key could not be checked
"""

from __future__ import annotations


class KeystoreError(Exception):
    """Base class of every keystore error."""


class MalformedKey(KeystoreError):
    pass


class UnknownKey(KeystoreError):
    pass


class RevokedKey(KeystoreError):
    pass


class ExpiredKey(KeystoreError):
    pass


class RateLimited(KeystoreError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(KeystoreError):
    pass


class InvalidInput(KeystoreError):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(KeystoreError):
    pass


class DuplicateKey(KeystoreError):
    pass


class StorageUnavailable(KeystoreError):
    pass
