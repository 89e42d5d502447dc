"""Pure functions for TokenHub keys: mint one, check its format and checksum, split it.

Layout (54 characters):

    th-  <id: 12 base62>  _  <secret: 32 base62>  <checksum: 6 base62>

* `id` is public (≈71 bits, random): it names the key in the admin API, logs and metrics.
* `secret` is 32 base62 characters from `secrets` (≈190 bits of entropy).
* `checksum` is CRC32 of everything before it (`th-<id>_<secret>`), base62, zero-padded to 6
  characters (GitHub's token layout). A typo or random garbage fails the checksum, so it is rejected
  without touching Redis or Postgres.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

from .errors import MalformedKey

PREFIX = "th-"
ID_LEN = 12
SECRET_LEN = 32
CHECKSUM_LEN = 6
KEY_LEN = len(PREFIX) + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_RE = re.compile(r"th-([0-9A-Za-z]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{6})")
_ID_RE = re.compile(r"[0-9A-Za-z]{12}")


def _random_base62(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _base62(value: int, width: int) -> str:
    out = []
    while value:
        value, rem = divmod(value, 62)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out)).rjust(width, "0")


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LEN)


def mint() -> tuple[str, str, str]:
    """Return `(full_key, key_id, secret)` for a fresh random key."""
    key_id, secret = _random_base62(ID_LEN), _random_base62(SECRET_LEN)
    body = f"{PREFIX}{key_id}_{secret}"
    return body + checksum(body), key_id, secret


def parse(presented: str) -> tuple[str, str]:
    """Split a presented key into `(key_id, secret)`.

    Raises MalformedKey for anything that is not exactly a well-formed key with a valid checksum.
    Pure: no I/O, constant work bounded by the key length.
    """
    if len(presented) != KEY_LEN:
        raise MalformedKey("key has the wrong length")
    match = _KEY_RE.fullmatch(presented)
    if match is None:
        raise MalformedKey("key is not in the th-<id>_<secret><checksum> format")
    key_id, secret, check = match.groups()
    # Not secret-dependent in a useful way (CRC is public), but compare in constant time anyway.
    if not secrets.compare_digest(checksum(presented[: -CHECKSUM_LEN]), check):
        raise MalformedKey("key checksum does not match")
    return key_id, secret


def is_key_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def hint(full_key: str) -> str:
    """A short display form: `th-` plus the first 4 id characters, an ellipsis, the last 4 characters."""
    return f"{full_key[:7]}…{full_key[-4:]}"


def digest(presented: str) -> bytes:
    """Fast digest of the whole presented key, used to key the in-process cache."""
    return hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
