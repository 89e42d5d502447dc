"""MACs over what instances write to Redis, keyed by the fleet secret that only Postgres holds.

Redis is a cache and a message bus, never an authority: a key record, a revocation message or an
acknowledgement read from Redis is believed only when its MAC checks out, i.e. when an instance that
read the fleet secret from Postgres wrote it. Each use has its own domain prefix, so a MAC made for
one kind of value is never valid for another.
"""

from __future__ import annotations

import hashlib
import hmac


class Seal:
    """HMAC-SHA256 with the fleet secret; `ready` is False until the secret has been read."""

    def __init__(self) -> None:
        self._secret: bytes | None = None

    @property
    def ready(self) -> bool:
        return self._secret is not None

    def load(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, domain: bytes, *parts: bytes) -> bytes:
        """The hex MAC of `parts` under `domain`. Raises RuntimeError before the secret is loaded."""
        if self._secret is None:
            raise RuntimeError("the fleet secret has not been read from Postgres yet")
        mac = hmac.new(self._secret, domain, hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(4, "big"))  # length-prefixed: no two part lists collide
            mac.update(part)
        return mac.hexdigest().encode()

    def check(self, mac: bytes, domain: bytes, *parts: bytes) -> bool:
        return self._secret is not None and hmac.compare_digest(mac, self.sign(domain, *parts))
