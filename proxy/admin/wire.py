"""The admin API's wire format: strict JSON request bodies and queries in, key/audit objects out.

Every rejection is an `InvalidRequest` (400) naming the offending field in `param`, or a 413 for a body
over the admin listener's `client_max_size`. Nothing here does I/O beyond reading the request body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from keystore import LIMIT_NAMES, NO_LIMITS, ApiKey, AuditEvent, Propagation

from proxy.admin import rules
from proxy.errors import InvalidRequest, PayloadTooLarge
from proxy.gateway.providers import ProviderTable

_STR: dict[str, Any] = {"type": "string"}
_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_STR_LIST: dict[str, Any] = {"type": "array", "items": _STR}

# The create and update bodies: each writable field and its JSON Schema (openapi.py documents them from
# here). The restriction lists come on top, documented per configuration (their enums are its names).
RESTRICTIONS = ("allowed_models", "allowed_providers")
CREATE_BODY: dict[str, dict[str, Any]] = {
    "name": rules.schema("name"), "account": rules.schema("account"), "expires_at": _NULLABLE_TIME,
    "limits": rules.schema("limits"),
}
UPDATE_BODY: dict[str, dict[str, Any]] = {
    "name": rules.schema("name"), "expires_at": {**_NULLABLE_TIME, "description": "null clears it."},
    "limits": rules.schema("limits"),
}
CREATE_FIELDS = frozenset(CREATE_BODY) | frozenset(RESTRICTIONS)
UPDATE_FIELDS = frozenset(UPDATE_BODY) | frozenset(RESTRICTIONS)
ROTATE_FIELDS = frozenset({"grace_seconds"})
# RFC 3339 date-time (section 5.6): a full date, a full time, an explicit offset. `fromisoformat`
# alone would take date-only strings, basic format and naive times.
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


# -- reading ------------------------------------------------------------------------------------------

def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"name": "a", "name": "b"} would silently become "b"; say so instead.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(f"field {key!r} appears more than once", param=key)
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_object(raw: bytes, allowed: frozenset[str], *, empty_ok: bool = False) -> dict[str, Any]:
    """Bytes → a JSON object whose keys are all in `allowed`."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise InvalidRequest("the request body must be a JSON object")
    try:
        body = json.loads(raw, object_pairs_hook=_object_without_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN/Infinity, absurd nesting
        raise InvalidRequest(f"the request body is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0][:100]!r}; allowed fields: {', '.join(sorted(allowed))}",
                             param=unknown[0][:100])
    return body


async def read_object(request: web.Request, allowed: frozenset[str], *, empty_ok: bool = False) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"the request body is larger than {request.client_max_size} bytes") from None
    return parse_object(raw, allowed, empty_ok=empty_ok)


def parse_time(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with an explicit offset, as an aware datetime in UTC."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidRequest(f"{field} must be an RFC 3339 date-time with a timezone, "
                             "e.g. 2030-01-31T12:00:00Z", param=field)
    date, clock, fraction, offset = match.groups()
    fraction = f".{(fraction or '0')[:6]:0<6}"
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{clock}{fraction}{offset}").astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"{field} is not a valid date-time: {value[:64]!r}", param=field) from None


def optional_time(body: Mapping[str, Any], field: str) -> datetime | None:
    value = body.get(field)
    return None if value is None else parse_time(value, field)


def string(body: Mapping[str, Any], field: str) -> str:
    value = body[field]
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string", param=field)
    return value


def string_list(body: Mapping[str, Any], field: str) -> list[str]:
    value = body.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{field} must be a list of strings", param=field)
    if len(value) > rules.MAX_LIST:
        raise InvalidRequest(f"{field} may hold at most {rules.MAX_LIST} entries", param=field)
    return list(dict.fromkeys(value))


def limits_object(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """`limits`, an object of limit names (each checked by the keystore); None when not given."""
    value = body.get("limits")
    if value is not None and not isinstance(value, dict):
        raise InvalidRequest("limits must be an object of limits, e.g. {\"requests_per_minute\": 60}",
                             param="limits")
    return value


def limits_patch(body: Mapping[str, Any]) -> dict[str, Any]:
    """PATCH `limits`: a partial object merged into the key's (null clears one); `"limits": null` clears all."""
    value = limits_object(body)
    return dict.fromkeys(LIMIT_NAMES) if value is None else value


def account(body: Mapping[str, Any]) -> str:
    return string(body, "account") if "account" in body else rules.ACCOUNT_DEFAULT


def grace_seconds(body: Mapping[str, Any]) -> float:
    value = body.get("grace_seconds", rules.GRACE_SECONDS.default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not rules.GRACE_SECONDS.holds(value):
        raise InvalidRequest(f"grace_seconds must be a number of seconds {rules.GRACE_SECONDS.text()}",
                             param="grace_seconds")
    return float(value)


def check_restrictions(models: Iterable[str], providers: Iterable[str], table: ProviderTable) -> None:
    """Only configured names, and no model whose provider the provider list excludes (a dead key)."""
    models, providers = list(models), list(providers)
    for m in models:
        if not table.knows_model(m):
            raise InvalidRequest(f"allowed_models: unknown model {m[:100]!r}; models are named provider/model, "
                                 "see GET /admin/providers", param="allowed_models")
    for p in providers:
        if not table.knows_provider(p):
            raise InvalidRequest(f"allowed_providers: unknown provider {p[:100]!r}; see GET /admin/providers",
                                 param="allowed_providers")
    for m in models:
        if providers and m.partition("/")[0] not in providers:
            raise InvalidRequest(f"allowed_models: {m!r} belongs to a provider that allowed_providers "
                                 "excludes, so the key could never use it", param="allowed_models")


# -- queries ------------------------------------------------------------------------------------------

def query(params: MultiMapping[str], allowed: frozenset[str]) -> dict[str, str]:
    """Query parameters: each known, given at most once, of sane length."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if name not in allowed:
            raise InvalidRequest(f"unknown query parameter {name[:100]!r}; allowed: {', '.join(sorted(allowed))}",
                                 param=name[:100])
        if name in out:
            raise InvalidRequest(f"query parameter {name!r} given more than once", param=name)
        if len(value) > rules.MAX_QUERY_VALUE:
            raise InvalidRequest(f"{name} is too long", param=name)
        out[name] = value
    return out


def limit(params: Mapping[str, str]) -> int:
    text = params.get("limit")
    if text is None:
        return rules.PAGE.default
    if not text.isascii() or not text.isdigit() or not rules.PAGE.holds(int(text)):
        raise InvalidRequest(f"limit must be an integer {rules.PAGE.text()}", param="limit")
    return int(text)


def status(params: Mapping[str, str]) -> str | None:
    value = params.get("status")
    if value is not None and value not in rules.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(rules.STATUSES)}", param="status")
    return value


# -- writing ------------------------------------------------------------------------------------------

def rfc3339(at: datetime | None) -> str | None:
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class WireField:
    """One field of the key object: its JSON Schema (for openapi.json) and how it is read off a record."""

    schema: dict[str, Any]
    read: Callable[[ApiKey, float], Any]  # (record, now as epoch seconds) -> JSON value

_USAGE_MONTH: dict[str, Any] = {
    "type": "object", "description": "This UTC month's metered use (up to [metering] flush_seconds behind).",
    "required": ["requests", "input_tokens", "output_tokens", "usd"],
    "properties": {"requests": {"type": "integer"}, "input_tokens": {"type": "integer"},
                   "output_tokens": {"type": "integer"}, "usd": {"type": "number"}}}

# The key object on the wire, in answer order. A new key field (limits, usage_this_month) is one entry
# here; key_object() and the OpenAPI `Key` schema (and the schemas built on it) both follow this table.
KEY_FIELDS: dict[str, WireField] = {
    "id": WireField(rules.schema("key_id"), lambda k, now: k.id),
    "name": WireField(_STR, lambda k, now: k.name),
    "account": WireField(_STR, lambda k, now: k.account),
    "hint": WireField(_STR | {"description": "Display hint, e.g. th-abcd…wxyz; never the key."},
                      lambda k, now: k.hint),
    "created_at": WireField(_TIME, lambda k, now: rfc3339(k.created_at)),
    "expires_at": WireField(_NULLABLE_TIME, lambda k, now: rfc3339(k.expires_at)),
    "last_used_at": WireField(_NULLABLE_TIME, lambda k, now: rfc3339(k.last_used_at)),
    "revoked_at": WireField(_NULLABLE_TIME | {"description": "May lie in the future: a rotation's grace period."},
                            lambda k, now: rfc3339(k.revoked_at)),
    "status": WireField(rules.schema("status"), lambda k, now: k.status(now)),
    "allowed_models": WireField(_STR_LIST, lambda k, now: list(k.allowed_models)),
    "allowed_providers": WireField(_STR_LIST, lambda k, now: list(k.allowed_providers)),
    "rotated_from": WireField(_NULLABLE_STR | {"description": "The id of the key this one replaced."},
                              lambda k, now: k.rotated_from),
    "limits": WireField(rules.schema("limits"), lambda k, now: (k.limits or NO_LIMITS).to_json()),
    # Read from the usage rollups, not the record: the handlers fill it (admin/usage.py with_usage).
    "usage_this_month": WireField(_USAGE_MONTH, lambda k, now: None),
}


def key_object(key: ApiKey, now: float) -> dict[str, Any]:
    return {name: field.read(key, now) for name, field in KEY_FIELDS.items()}


def propagation_object(p: Propagation) -> dict[str, Any]:
    return {"instances": p.instances, "confirmed": p.confirmed, "published": p.published}


def audit_object(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": rfc3339(event.at), "actor": event.actor, "action": event.action,
            "key_id": event.key_id, "request_id": event.request_id, "details": event.details}


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")
