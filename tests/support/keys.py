"""Key material for tests: the one way to forge a well-formed key with a wrong secret."""

from __future__ import annotations

import secrets

from keystore import keygen

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def forged(key_or_id: str, secret: str | None = None) -> str:
    """A well-formed key (valid checksum) for a key id, or for the id of a full key, with another secret
    (random unless given, 32 base62 characters): it passes the format check, so only the stores and
    argon2 can refuse it."""
    key_id = keygen.parse(key_or_id)[0] if key_or_id.startswith(keygen.PREFIX) else key_or_id
    secret = secret if secret is not None else "".join(secrets.choice(_ALPHABET) for _ in range(32))
    body = f"{keygen.PREFIX}{key_id}_{secret}"
    return body + keygen.checksum(body)
