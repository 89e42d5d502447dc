"""The key record and its one conversion: Postgres row ↔ `ApiKey`/`StoredKey` ↔ the JSON body of its Redis form.

Adding a field to a key touches three places: a migration (the column), this module (the `ApiKey`
field and its one `Field` line in `FIELDS`), and the admin wire schema. Every SELECT, RETURNING and the
one INSERT in pg.py, and the Redis record in cache.py, are built from `FIELDS`; an `ApiKey` field
without a `Field` line fails at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from .limits import KeyLimits, limits_from_db, limits_from_json, limits_to_db


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as everyone but the hasher sees it. Holds no secret and no hash.

    Times are Postgres times. `revoked` is a state set by a revoke and in force from its commit,
    whatever any clock says; `revoked_at` alone (in the future) is a rotation's scheduled end.
    """

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
    revoked: bool = False
    limits: KeyLimits | None = None  # None: no limit at all (the request path checks only this)

    def status(self, now: float) -> str:
        """`now` is Postgres time (epoch seconds), e.g. `KeyStore.now()`."""
        if self.revoked or (self.revoked_at is not None and self.revoked_at.timestamp() <= now):
            return "revoked"
        if self.expires_at is not None and self.expires_at.timestamp() <= now:
            return "expired"
        return "active"

    def usable_until(self) -> float:
        """Epoch second (Postgres time) from which the key stops working (inf when it has no end)."""
        if self.revoked:
            return float("-inf")
        ends = [t.timestamp() for t in (self.expires_at, self.revoked_at) if t is not None]
        return min(ends, default=float("inf"))

    def allows(self, provider: str, model: str) -> bool:
        """`model` is the full `provider/model` name."""
        if self.allowed_providers and provider not in self.allowed_providers:
            return False
        return not self.allowed_models or model in self.allowed_models


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key plus its argon2 hash, as read from Postgres at `read_at` (Postgres epoch seconds)."""

    key: ApiKey
    secret_hash: str = field(repr=False)
    read_at: float = 0.0


def _same(value: Any) -> Any:
    return value


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Field:
    """One `ApiKey` field: its column has the same name. `from_db`/`to_db` convert asyncpg values,
    `from_json` the value orjson wrote (orjson writes datetimes as RFC 3339 and tuples as lists)."""

    name: str
    from_db: Callable[[Any], Any] = _same
    to_db: Callable[[Any], Any] = _same
    from_json: Callable[[Any], Any] = _same


def _names_field(name: str) -> Field:
    return Field(name, from_db=tuple, to_db=list, from_json=tuple)


FIELDS: tuple[Field, ...] = (
    Field("id"), Field("name"), Field("account"), Field("hint"),
    Field("created_at", from_json=_time), Field("expires_at", from_json=_time),
    Field("last_used_at", from_json=_time), Field("revoked_at", from_json=_time),
    _names_field("allowed_models"), _names_field("allowed_providers"),
    Field("rotated_from"), Field("version"), Field("revoked"),
    Field("limits", from_db=limits_from_db, to_db=limits_to_db, from_json=limits_from_json),
)
if {f.name for f in FIELDS} != {f.name for f in fields(ApiKey)}:  # pragma: no cover - a developer error
    raise RuntimeError("keystore.record.FIELDS must name every ApiKey field exactly once")

# What every SELECT and RETURNING of a key reads: the fields, the hash, and Postgres' own time of the read.
COLUMNS = ", ".join([f.name for f in FIELDS] + ["secret_hash", "extract(epoch FROM clock_timestamp()) AS read_at"])
INSERT_COLUMNS: tuple[str, ...] = (*(f.name for f in FIELDS), "secret_hash")


def from_row(row: Mapping[str, Any]) -> StoredKey:
    """A Postgres row (selected with `COLUMNS`) → the record."""
    key = ApiKey(**{f.name: f.from_db(row[f.name]) for f in FIELDS})
    return StoredKey(key=key, secret_hash=row["secret_hash"], read_at=float(row["read_at"]))


def insert_values(stored: StoredKey) -> list[Any]:
    """The record → the values of `INSERT_COLUMNS`, in that order."""
    return [*(f.to_db(getattr(stored.key, f.name)) for f in FIELDS), stored.secret_hash]


def to_json(stored: StoredKey) -> dict[str, Any]:
    """The record → the JSON body of its Redis form (orjson serialises datetimes and tuples)."""
    body = {f.name: getattr(stored.key, f.name) for f in FIELDS}
    return body | {"hash": stored.secret_hash, "read_at": stored.read_at}


def from_json(body: Mapping[str, Any]) -> StoredKey:
    """The JSON body of a Redis record → the record. Raises KeyError/ValueError/TypeError on a bad body."""
    key = ApiKey(**{f.name: f.from_json(body[f.name]) for f in FIELDS})
    return StoredKey(key=key, secret_hash=str(body["hash"]), read_at=float(body["read_at"]))
