"""Usage on the admin side: `GET /admin/keys/{id}/usage` and the `usage_this_month` summary that
every key object carries. Both read the rollups in Postgres, which are up to `[metering]
flush_seconds` behind the requests (each instance writes its batch that often)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from keystore import GRANULARITIES, KeyStore, UsagePoint, UsageTotals

from proxy.admin.wire import json_response, parse_time, query, rfc3339
from proxy.errors import InvalidRequest, ServiceUnavailable
from proxy.metering.meter import Meter
from proxy.state import KEYSTORE, METER

routes = web.RouteTableDef()
_PARAMS = frozenset({"from", "to", "granularity", "group_by"})
_MAX_HOURS = {"hour": 24 * 93, "day": 24 * 3700, "month": 24 * 366 * 50}  # keeps an answer a sane size
_ZERO = UsageTotals()


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usd(value: Decimal) -> float:
    return float(round(value, 9))


def totals_object(t: UsageTotals) -> dict[str, Any]:
    return {"requests": t.requests, "unmetered_requests": t.unmetered_requests, "input_tokens": t.input_tokens,
            "cached_input_tokens": t.cached_input_tokens, "output_tokens": t.output_tokens, "usd": usd(t.usd)}


def month_object(t: UsageTotals) -> dict[str, Any]:
    """`usage_this_month` as SPEC §9 names it."""
    return {"requests": t.requests, "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
            "usd": usd(t.usd)}


def _meter(request: web.Request) -> Meter:
    meter = request.config_dict.get(METER)
    if meter is None:
        raise ServiceUnavailable("Usage is not available yet; retry shortly.", headers={"Retry-After": "1"})
    return meter


async def usage_this_month(request: web.Request, key_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`usage_this_month` of each key (one query for all of them); keys without use get zeros."""
    meter = _meter(request)
    found = await meter.db.totals_since(key_ids, month_start(meter.clock.now())) if key_ids else {}
    return {k: month_object(found.get(k, _ZERO)) for k in key_ids}


def _range(params: dict[str, str], now: datetime) -> tuple[datetime, datetime]:
    start = parse_time(params["from"], "from") if "from" in params else month_start(now)
    end = parse_time(params["to"], "to") if "to" in params else now
    if start >= end:
        raise InvalidRequest("from must be before to", param="from")
    return start, end


def _point(p: UsagePoint) -> dict[str, Any]:
    head: dict[str, Any] = {"start": rfc3339(p.start)}
    if p.model is not None:
        head["model"] = p.model
    return head | totals_object(p.totals)


def _sum(points: Sequence[UsagePoint]) -> UsageTotals:
    t = [p.totals for p in points]
    return UsageTotals(requests=sum(x.requests for x in t), unmetered_requests=sum(x.unmetered_requests for x in t),
                       input_tokens=sum(x.input_tokens for x in t),
                       cached_input_tokens=sum(x.cached_input_tokens for x in t),
                       output_tokens=sum(x.output_tokens for x in t), usd=sum((x.usd for x in t), Decimal(0)))


@routes.get("/keys/{id}/usage")
async def key_usage(request: web.Request) -> web.Response:
    """A key's usage in buckets of `granularity` (hour, day, month; default day) whose hours lie in
    [`from`, `to`) (default: this UTC month up to now), optionally split by model."""
    params = query(request.query, _PARAMS)
    granularity = params.get("granularity", "day")
    if granularity not in GRANULARITIES:
        raise InvalidRequest(f"granularity must be one of {', '.join(GRANULARITIES)}", param="granularity")
    if params.get("group_by", "model") != "model":
        raise InvalidRequest("group_by may only be model", param="group_by")
    store: KeyStore = request.config_dict[KEYSTORE]
    key = await store.get(request.match_info["id"])  # 404 for an unknown key
    meter = _meter(request)
    start, end = _range(params, meter.clock.now())
    if end - start > timedelta(hours=_MAX_HOURS[granularity]):
        raise InvalidRequest(f"the range is too long for granularity {granularity}; use a coarser one",
                             param="from")
    points = await meter.db.series(key.id, start=start, end=end, granularity=granularity,
                                             by_model="group_by" in params)
    return json_response({"key_id": key.id, "from": rfc3339(start), "to": rfc3339(end), "granularity": granularity,
                          "data": [_point(p) for p in points], "total": totals_object(_sum(points))})


async def with_usage(request: web.Request, *objects: dict[str, Any]) -> None:
    """Fill `usage_this_month` of these key objects in place (one query for all of them)."""
    month = await usage_this_month(request, [o["id"] for o in objects])
    for o in objects:
        o["usage_this_month"] = month[o["id"]]


# -- OpenAPI (merged into the document by openapi.py) -------------------------------------------------

_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
_TOTALS: dict[str, Any] = {"requests": _INT | {"description": "Forwarded requests, metered or not."},
                           "unmetered_requests": _INT | {"description": "Of which the provider's figure was missing "
                                                                        "(see tokenhub_usage_unmetered_total)."},
                           "input_tokens": _INT, "cached_input_tokens": _INT | {"description": "Part of input_tokens."},
                           "output_tokens": _INT, "usd": {"type": "number", "description": "From the configured prices."}}


def _schema(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _answer(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


OPENAPI_SCHEMAS: dict[str, Any] = {
    "UsageTotals": _schema(_TOTALS),
    "UsageBucket": {"type": "object", "required": ["start", *_TOTALS], "additionalProperties": False,
                    "properties": {"start": {"type": "string", "format": "date-time"},
                                   "model": {"type": "string", "description": "With group_by=model."}} | _TOTALS},
    "UsageReport": _schema({"key_id": {"type": "string"}, "from": {"type": "string", "format": "date-time"},
                            "to": {"type": "string", "format": "date-time"},
                            "granularity": {"type": "string", "enum": list(GRANULARITIES)},
                            "data": {"type": "array", "items": _ref("UsageBucket")}, "total": _ref("UsageTotals")}),
}
OPENAPI_PATHS: dict[str, Any] = {
    "/admin/keys/{id}/usage": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": {"operationId": "keyUsage", "summary": "A key's metered usage over time",
                "description": "Buckets whose UTC hours lie in [from, to), only those with use, oldest first. "
                               "Up to [metering] flush_seconds behind the requests.",
                "parameters": [_param("from", {"type": "string", "format": "date-time"},
                                      "Start (RFC 3339; default: the start of this UTC month)."),
                               _param("to", {"type": "string", "format": "date-time"}, "End (default: now)."),
                               _param("granularity", {"type": "string", "enum": list(GRANULARITIES)},
                                      "Bucket size (default day)."),
                               _param("group_by", {"type": "string", "enum": ["model"]}, "Split by model.")],
                "responses": {"200": _answer("UsageReport", "The buckets and their total."),
                              "400": _answer("Error", "Invalid query; `error.param` names it."),
                              "401": _answer("Error", "Missing or wrong admin token."),
                              "404": _answer("Error", "No key with this id."),
                              "503": _answer("Error", "Postgres is unreachable.")}},
    },
}
