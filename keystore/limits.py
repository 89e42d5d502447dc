"""A key's limits and budgets (`KeyLimits`): the value on the key record, its checks and its JSON form.

Six optional limits, each None for "no limit". A key with no limit at all carries `limits=None` on its
record, so the request path tells a limited key from an unlimited one with one attribute read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidInput

MAX_COUNT = 10**12  # more tokens or requests than any real key could use
MAX_USD = 10**9


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Enforced across the fleet by the proxy's limiter (proxy/limits/). Months are UTC calendar months."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_requests: int | None = None
    tokens_per_month: int | None = None
    usd_per_month: float | None = None
    max_tokens_per_request: int | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, n) is None for n in LIMIT_NAMES)

    def to_json(self) -> dict[str, Any]:
        """All six names, None for "no limit" (the key object's `limits`)."""
        return {n: getattr(self, n) for n in LIMIT_NAMES}

    def merged(self, patch: Mapping[str, Any]) -> KeyLimits:
        """A partial object merged in: a given name replaces, a null clears. Raises InvalidInput."""
        if not isinstance(patch, Mapping):
            raise InvalidInput("limits must be an object", field="limits")
        unknown = sorted(set(patch) - set(LIMIT_NAMES))
        if unknown:
            raise InvalidInput(f"limits: unknown limit {str(unknown[0])[:100]!r}; known: {', '.join(LIMIT_NAMES)}",
                               field="limits")
        changes: dict[str, Any] = {n: _checked(n, v) for n, v in patch.items()}
        return replace(self, **changes)


LIMIT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(KeyLimits))
NO_LIMITS = KeyLimits()


def _checked(name: str, value: Any) -> int | float | None:
    if value is None:
        return None
    if name == "usd_per_month":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_USD:
            raise InvalidInput(f"limits.{name} must be a number of USD above 0 (at most {MAX_USD}) or null",
                               field="limits")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise InvalidInput(f"limits.{name} must be an integer from 1 to {MAX_COUNT} or null", field="limits")
    return value


def limits_from(value: Any, base: KeyLimits | None = None) -> KeyLimits | None:
    """`value` (a JSON object, partial when `base` is given) merged into `base`; None when nothing is
    limited. Raises InvalidInput."""
    merged = (base or NO_LIMITS).merged(value)
    return None if merged.empty else merged


def limits_from_db(value: Any) -> KeyLimits | None:
    """The jsonb column (asyncpg hands jsonb over as text) → the value; NULL or `{}` → None."""
    if value is None:
        return None
    return limits_from(json.loads(value) if isinstance(value, str) else value)


def limits_to_db(limits: KeyLimits | None) -> str | None:
    return None if limits is None else json.dumps(limits.to_json())


def limits_from_json(value: Any) -> KeyLimits | None:
    return None if value is None else limits_from(value)
