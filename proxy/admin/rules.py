"""The admin side's validation table: every bound and format of a key's fields and of the admin calls, once.

The admin API checks with it (`wire.py`), the OpenAPI document is written from it (`openapi.py`), the
CLI offers its choices and bounds (`cli/keys.py`), and the page's server side fills the form's limits
from it (`page.py`). The keystore enforces the record rules (name, account, status, page size, grace)
on its own as the last line; `tests/admin/test_rules.py` pins that it agrees with this table.

Plain data and pure functions only: no aiohttp, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keystore import LIMIT_NAMES, MAX_COUNT, MAX_USD
from keystore import STATUSES as _KEY_STATUSES


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive numeric range with the value used when the caller gives none."""

    low: int
    high: int
    default: int

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self) -> str:
        return f"from {self.low} to {self.high}"


STATUSES: tuple[str, ...] = _KEY_STATUSES  # a key's statuses; the keystore derives them from its times
NAME_MAX = 200  # characters; required, not only whitespace, no control characters
ACCOUNT_MAX = 128
ACCOUNT_FORMAT = rf"[A-Za-z0-9][A-Za-z0-9._:@-]{{0,{ACCOUNT_MAX - 1}}}"  # the tenant a key belongs to
ACCOUNT_DEFAULT = "default"
KEY_ID_FORMAT = "[0-9A-Za-z]{12}"  # a key's public id (keystore.keygen: 12 base62 characters)
PAGE = Range(1, 1000, 100)  # `limit` of a key list or an audit page
GRACE_SECONDS = Range(0, 30 * 86400, 0)  # how long a rotated key keeps working
MAX_LIST = 1000  # restriction entries; more than any real config has models
MAX_QUERY_VALUE = 256  # characters of one query parameter
AUDIT_ACTIONS = ("key.create", "key.update", "key.revoke", "key.rotate")

# The same rule as the keystore's name check, as an ECMA regex for JSON Schema: at least one character
# that is neither whitespace nor a control character, and no control character anywhere.
_NAME_PATTERN = r"^[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u001f\u007f]*$"


def _range_schema(r: Range, type_: str) -> dict[str, Any]:
    return {"type": type_, "minimum": r.low, "maximum": r.high}


def schema(rule: str) -> dict[str, Any]:
    """The JSON Schema of one rule, for the OpenAPI document."""
    return dict(_SCHEMAS[rule])


def _limit_schema(name: str) -> dict[str, Any]:
    if name == "usd_per_month":
        return {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_USD}
    return {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_COUNT}


# A key's limits (the keystore checks them too: keystore/limits.py). On PATCH a partial object merges
# into the key's; null clears one limit.
LIMITS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {n: _limit_schema(n) for n in LIMIT_NAMES},
    "description": "Per-key limits, each null for none: requests and tokens per minute, concurrent requests, "
                   "tokens and USD per UTC calendar month, max tokens per request. On PATCH a partial object "
                   "merges (null clears one).",
}

_SCHEMAS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": _NAME_PATTERN,
             "description": f"Required; 1-{NAME_MAX} characters, not only whitespace, no control characters."},
    "account": {"type": "string", "pattern": f"^{ACCOUNT_FORMAT}$",
                "description": f"The tenant the key belongs to (default `{ACCOUNT_DEFAULT}`)."},
    "key_id": {"type": "string", "pattern": f"^{KEY_ID_FORMAT}$", "description": "The key's public id."},
    "status": {"type": "string", "enum": list(STATUSES)},
    "grace_seconds": _range_schema(GRACE_SECONDS, "number") | {
        "description": f"Seconds the old key keeps working after a rotation (default {GRACE_SECONDS.default})."},
    "limit": _range_schema(PAGE, "integer"),
    "query_value": {"type": "string", "maxLength": MAX_QUERY_VALUE},
    "audit_action": {"type": "string", "enum": list(AUDIT_ACTIONS)},
    "limits": LIMITS_SCHEMA,
}
