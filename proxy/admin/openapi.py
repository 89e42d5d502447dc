"""The OpenAPI 3.1 document of the admin listener, written by hand: every call, every schema.

`document()` takes the configured model and provider names so that the restriction lists are
documented (and fuzzed) as the enums the server really accepts. Bounds and formats come from
`rules.py`, the key object's fields from `wire.KEY_FIELDS`: nothing here restates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxy.admin import rules, usage
from proxy.admin.wire import CREATE_BODY, KEY_FIELDS, UPDATE_BODY
from proxy.gateway.styles import STYLES

_NULLABLE_STR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_KEY_ID = rules.schema("key_id")
_STATUS = rules.schema("status")
_QUERY_VALUE = rules.schema("query_value")


def _obj(props: dict[str, Any], required: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": list(props if required is None else required), "additionalProperties": False} | extra


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _names(values: Sequence[str], what: str) -> dict[str, Any]:
    items: dict[str, Any] = {"type": "string", "enum": list(values)} if values else {"type": "string"}
    out: dict[str, Any] = {"type": "array", "items": items,
                           "description": f"Allow-list of {what}; empty means all; duplicates are ignored."}
    return out if values else out | {"maxItems": 0}


_KEY_PROPS: dict[str, Any] = {name: field.schema for name, field in KEY_FIELDS.items()}
_SECRET = {"type": "string", "pattern": "^th-", "description": "The full key. Shown only in this response."}


def _schemas(models: Sequence[str], providers: Sequence[str]) -> dict[str, Any]:
    restrictions = {"allowed_models": _names(models, "models (provider/model)"),
                    "allowed_providers": _names(providers, "providers")}
    return {
        "Error": _obj({"error": _obj({"message": {"type": "string"}, "type": {"type": "string"},
                                      "param": _NULLABLE_STR, "code": _NULLABLE_STR})}),
        "Key": _obj(_KEY_PROPS),
        "Propagation": _obj({
            "instances": {"type": "integer", "minimum": 0, "description": "Live proxy instances."},
            "confirmed": {"type": "integer", "minimum": 0, "description": "Instances that confirmed the eviction."},
            "published": {"type": "boolean", "description": "False if Redis was unreachable (Postgres backstop)."},
        }),
        "IssuedKey": _obj(_KEY_PROPS | {"key": _SECRET}),
        "ChangedKey": _obj(_KEY_PROPS | {"propagation": _ref("Propagation")}),
        "RotatedKey": _obj(_KEY_PROPS | {"key": _SECRET, "previous": _ref("Key"), "propagation": _ref("Propagation")}),
        "KeyList": _obj({"data": {"type": "array", "items": _ref("Key")},
                         "next_cursor": {**_NULLABLE_STR, "description": "Pass as `cursor` for the next page."},
                         "rotation_reminder_days": {"type": "integer", "description": (
                             "[keystore] rotation_reminder_days: keys older than this are due for rotation.")}}),
        "AuditEvent": _obj({
            "id": {"type": "integer"}, "at": _TIME, "actor": {"type": "string", "description": "Admin token name."},
            "action": rules.schema("audit_action"),
            "key_id": _NULLABLE_STR, "request_id": _NULLABLE_STR, "details": {"type": "object"},
        }),
        "AuditList": _obj({"data": {"type": "array", "items": _ref("AuditEvent")}}),
        "ProviderList": _obj({"data": {"type": "array", "items": _obj({
            "name": {"type": "string"}, "api": {"type": "string", "enum": list(STYLES)},
            "models": {"type": "array", "items": {"type": "string"}}})}}),
        "CreateKey": _obj(CREATE_BODY | restrictions, required=["name"]),
        "UpdateKey": _obj(UPDATE_BODY | restrictions, required=[], minProperties=1),
        "RotateKey": _obj({"grace_seconds": rules.schema("grace_seconds")}, required=[]),
    } | usage.OPENAPI_SCHEMAS


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_ERRORS = {
    "400": _json("Error", "Invalid input; `error.param` names the field."),
    "401": _json("Error", "Missing or wrong admin token."),
    "503": _json("Error", "Postgres is unreachable."),
}
_TOO_LARGE = {"413": _json("Error", "The request body is larger than 1 MiB.")}
_NOT_FOUND = {"404": _json("Error", "No key with this id.")}
_REVOKED = {"409": _json("Error", "The key is revoked (or a revoke of it committed first): it cannot be rotated.")}
_ID_PARAM = [{"name": "id", "in": "path", "required": True, "schema": _KEY_ID}]


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


_LIMIT = rules.schema("limit")

_PATHS: dict[str, Any] = {
    "/admin/keys": {
        "post": {"operationId": "createKey", "summary": "Create a key (the full key is returned once)",
                 "requestBody": _body("CreateKey"),
                 "responses": {"201": _json("IssuedKey", "The key object plus `key`.")} | _ERRORS | _TOO_LARGE},
        "get": {"operationId": "listKeys", "summary": "List keys, newest first",
                "parameters": [_q("account", _QUERY_VALUE, "Only this account."),
                               _q("status", _STATUS, "Only keys in this status."),
                               _q("limit", _LIMIT, f"Page size (default {rules.PAGE.default})."),
                               _q("cursor", _QUERY_VALUE, "`next_cursor` of the previous page.")],
                "responses": {"200": _json("KeyList", "A page of keys.")} | _ERRORS},
    },
    "/admin/keys/{id}": {
        "parameters": _ID_PARAM,
        "get": {"operationId": "getKey", "summary": "One key",
                "responses": {"200": _json("Key", "The key.")} | _ERRORS | _NOT_FOUND},
        "patch": {"operationId": "updateKey", "summary": "Change name, expiry or restrictions",
                  "description": "Narrowing changes reach every instance before the call returns, like a revoke.",
                  "requestBody": _body("UpdateKey"),
                  "responses": {"200": _json("ChangedKey", "The updated key and how far the change spread.")}
                  | _ERRORS | _NOT_FOUND | _TOO_LARGE},
    },
    "/admin/keys/{id}/revoke": {
        "parameters": _ID_PARAM,
        "post": {"operationId": "revokeKey", "summary": "Revoke now (idempotent)",
                 "description": "Returns after the commit, the Redis update and the publish; `propagation` says "
                                "how many live instances confirmed the eviction.",
                 "requestBody": {"required": False, "content": {"application/json": {"schema": _obj({})}}},
                 "responses": {"200": _json("ChangedKey", "The revoked key.")} | _ERRORS | _NOT_FOUND | _TOO_LARGE},
    },
    "/admin/keys/{id}/rotate": {
        "parameters": _ID_PARAM,
        "post": {"operationId": "rotateKey", "summary": "Replace a key; the old one works for `grace_seconds`",
                 "requestBody": _body("RotateKey", required=False),
                 "responses": {"201": _json("RotatedKey", "The new key plus `key`; `previous` is the old key.")}
                 | _ERRORS | _NOT_FOUND | _REVOKED | _TOO_LARGE},
    },
    "/admin/audit": {
        "get": {"operationId": "listAudit", "summary": "Audit log of every mutation, newest first",
                "parameters": [_q("key_id", _QUERY_VALUE, "Only events of this key."),
                               _q("limit", _LIMIT, f"At most this many (default {rules.PAGE.default}).")],
                "responses": {"200": _json("AuditList", "Audit events.")} | _ERRORS},
    },
    "/admin/providers": {
        "get": {"operationId": "listProviders", "summary": "Configured providers and their models",
                "responses": {"200": _json("ProviderList", "Model names as used in restrictions.")}
                | {k: v for k, v in _ERRORS.items() if k != "503"}},
    },
    "/admin/openapi.json": {
        "get": {"operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                    "schema": {"type": "object"}}}}, "401": _ERRORS["401"]}},
    },
    "/metrics": {
        "get": {"operationId": "metrics", "summary": "Prometheus metrics (no token needed)", "security": [],
                "responses": {"200": {"description": "Prometheus text format 0.0.4",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}}},
    },
}


def document(models: Sequence[str] = (), providers: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "TokenHub admin API", "version": "1",
                 "description": "Issue, list, change, rotate and revoke TokenHub keys. Times are RFC 3339 "
                                "UTC. Errors use the OpenAI shape {error: {message, type, param, code}}."},
        "servers": [{"url": "/"}],
        "security": [{"adminToken": []}],
        "paths": _PATHS | usage.OPENAPI_PATHS,
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer",
                                               "description": "TOKENHUB_ADMIN_TOKEN or a named token from "
                                                              "[admin] token_envs"}},
            "schemas": _schemas(models, providers),
        },
    }
