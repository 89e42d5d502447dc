"""Bad input to every admin call: always a 4xx in the error shape naming the field, never a 500."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.support.admin import Client, create, error_of, expect

MIB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


CREATE_CASES: list[tuple[str, Any, int, str | None]] = [
    # (case, body: dict → JSON, bytes → raw, expected status, expected error.param)
    ("missing name", {}, 400, "name"),
    ("name not a string", {"name": 5}, 400, "name"),
    ("name null", {"name": None}, 400, "name"),
    ("name empty", {"name": ""}, 400, "name"),
    ("name only spaces", {"name": "   "}, 400, "name"),
    ("name with a newline", {"name": "a\nb"}, 400, "name"),
    ("name 201 characters", {"name": "n" * 201}, 400, "name"),
    ("name of a million characters", {"name": "n" * 1_000_000}, 400, "name"),
    ("name over a mebibyte", {"name": "n" * (MIB + 10)}, 413, None),
    ("unknown field", {"name": "x", "nmae": "y"}, 400, "nmae"),
    ("key given by the client", {"name": "x", "key": "th-mine"}, 400, "key"),
    ("duplicate field", b'{"name": "a", "name": "b"}', 400, "name"),
    ("invalid JSON", b'{"name": ', 400, None),
    ("not an object", b'["name"]', 400, None),
    ("empty body", b"", 400, None),
    ("NaN", b'{"name": NaN}', 400, None),
    ("bad UTF-8", b'{"name": "\xff\xfe"}', 400, None),
    ("absurd nesting", b'{"name": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 400, None),
    ("account with a space", {"name": "x", "account": "a b"}, 400, "account"),
    ("account a number", {"name": "x", "account": 7}, 400, "account"),
    ("account empty", {"name": "x", "account": ""}, 400, "account"),
    ("expiry in the past", {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, 400, "expires_at"),
    ("expiry without timezone", {"name": "x", "expires_at": "2099-01-01T00:00:00"}, 400, "expires_at"),
    ("expiry date only", {"name": "x", "expires_at": "2099-01-01"}, 400, "expires_at"),
    ("expiry basic format", {"name": "x", "expires_at": "20990101T000000Z"}, 400, "expires_at"),
    ("expiry words", {"name": "x", "expires_at": "tomorrow"}, 400, "expires_at"),
    ("expiry a number", {"name": "x", "expires_at": 4102444800}, 400, "expires_at"),
    ("expiry impossible date", {"name": "x", "expires_at": "2099-02-30T00:00:00Z"}, 400, "expires_at"),
    ("expiry out of range", {"name": "x", "expires_at": "0001-01-01T00:00:00+14:00"}, 400, "expires_at"),
    ("models a string", {"name": "x", "allowed_models": "openai/gpt-4o"}, 400, "allowed_models"),
    ("models null", {"name": "x", "allowed_models": None}, 400, "allowed_models"),
    ("models not strings", {"name": "x", "allowed_models": [1]}, 400, "allowed_models"),
    ("unknown model", {"name": "x", "allowed_models": ["openai/gpt-5"]}, 400, "allowed_models"),
    ("bare model name", {"name": "x", "allowed_models": ["gpt-4o"]}, 400, "allowed_models"),
    ("unknown provider", {"name": "x", "allowed_providers": ["anthropic"]}, 400, "allowed_providers"),
    ("providers an object", {"name": "x", "allowed_providers": {"a": 1}}, 400, "allowed_providers"),
    ("model outside the providers", {"name": "x", "allowed_models": ["openai/gpt-4o"],
                                     "allowed_providers": ["local"]}, 400, "allowed_models"),
]


async def _post(api: Client, path: str, body: Any, method: str = "POST") -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    # A file-like body: aiohttp warns (an error here) about raw bytes over 1 MiB.
    return await api.request(method, path, data=io.BytesIO(raw), headers=JSON)


@pytest.mark.parametrize(("body", "status", "param"), [c[1:] for c in CREATE_CASES], ids=[c[0] for c in CREATE_CASES])
async def test_create_rejects(api: Client, body: Any, status: int, param: str | None) -> None:
    err = error_of(await expect(await _post(api, "/admin/keys", body), status))
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]
    assert len(err["message"]) < 500  # a clear message, not an echo of the megabyte
    listed = await expect(await api.get("/admin/keys"), 200)
    assert listed["data"] == []


UPDATE_CASES: list[tuple[str, Any, str | None]] = [
    ("nothing to change", {}, None),
    ("account cannot change", {"account": "other"}, "account"),
    ("unknown field", {"revoked_at": None}, "revoked_at"),
    ("name a list", {"name": ["a"]}, "name"),
    ("name null", {"name": None}, "name"),
    ("expiry in the past", {"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ("expiry without timezone", {"expires_at": "2099-01-01 10:00:00"}, "expires_at"),
    ("unknown model", {"allowed_models": ["local/gpt-4o"]}, "allowed_models"),
    ("unknown provider", {"allowed_providers": ["azure"]}, "allowed_providers"),
    ("models null", {"allowed_models": None}, "allowed_models"),
    ("model outside the key's providers", {"allowed_models": ["openai/gpt-4o"]}, "allowed_models"),
    ("invalid JSON", b"{", None),
]


@pytest.mark.parametrize(("body", "param"), [c[1:] for c in UPDATE_CASES], ids=[c[0] for c in UPDATE_CASES])
async def test_update_rejects(api: Client, body: Any, param: str | None) -> None:
    key = await create(api, allowed_providers=["local"])
    err = error_of(await expect(await _post(api, f"/admin/keys/{key['id']}", body, "PATCH"), 400))
    assert err["param"] == param and err["message"]
    unchanged = await expect(await api.get(f"/admin/keys/{key['id']}"), 200)
    assert unchanged == {k: v for k, v in key.items() if k != "key"}


ROTATE_CASES: list[tuple[str, Any, str | None]] = [
    ("negative grace", {"grace_seconds": -1}, "grace_seconds"),
    ("grace as a string", {"grace_seconds": "60"}, "grace_seconds"),
    ("grace as a boolean", {"grace_seconds": True}, "grace_seconds"),
    ("grace over 30 days", {"grace_seconds": 1e9}, "grace_seconds"),
    ("grace null", {"grace_seconds": None}, "grace_seconds"),
    ("unknown field", {"grace": 60}, "grace"),
    ("not an object", b"60", None),
]


@pytest.mark.parametrize(("body", "param"), [c[1:] for c in ROTATE_CASES], ids=[c[0] for c in ROTATE_CASES])
async def test_rotate_rejects(api: Client, key_object: dict[str, Any], body: Any, param: str | None) -> None:
    err = error_of(await expect(await _post(api, f"/admin/keys/{key_object['id']}/rotate", body), 400))
    assert err["param"] == param
    assert (await expect(await api.get(f"/admin/keys/{key_object['id']}"), 200))["revoked_at"] is None


async def test_rotating_a_revoked_key_is_refused(api: Client, key_object: dict[str, Any]) -> None:
    await expect(await api.post(f"/admin/keys/{key_object['id']}/revoke"), 200)
    err = error_of(await expect(await api.post(f"/admin/keys/{key_object['id']}/rotate"), 409))
    assert "revoked" in err["message"]


async def test_revoke_rejects_a_body_with_fields(api: Client, key_object: dict[str, Any]) -> None:
    err = error_of(await expect(await api.post(f"/admin/keys/{key_object['id']}/revoke", json={"reason": "x"}), 400))
    assert err["param"] == "reason"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/admin/keys/{id}"), ("PATCH", "/admin/keys/{id}"), ("POST", "/admin/keys/{id}/revoke"),
    ("POST", "/admin/keys/{id}/rotate")])
@pytest.mark.parametrize("key_id", ["AAAAAAAAAAAA", "not-a-key-id", "x" * 300, "%00"])
async def test_unknown_ids_are_404(api: Client, method: str, path: str, key_id: str) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    resp = await api.request(method, path.replace("{id}", key_id), json=body)
    err = error_of(await expect(resp, 404))
    assert err["type"] == "not_found_error"


QUERY_CASES = [
    ("/admin/keys", {"status": "deleted"}, "status"),
    ("/admin/keys", {"limit": "0"}, "limit"),
    ("/admin/keys", {"limit": "1001"}, "limit"),
    ("/admin/keys", {"limit": "ten"}, "limit"),
    ("/admin/keys", {"limit": "-1"}, "limit"),
    ("/admin/keys", {"limit": "1.5"}, "limit"),
    ("/admin/keys", {"limit": "٣"}, "limit"),
    ("/admin/keys", {"cursor": "garbage!"}, "cursor"),
    ("/admin/keys", {"cursor": "MjAyMHx4"}, "cursor"),
    ("/admin/keys", {"sort": "name"}, "sort"),
    ("/admin/keys", {"account": "a" * 300}, "account"),
    ("/admin/audit", {"limit": "100000"}, "limit"),
    ("/admin/audit", {"key": "x"}, "key"),
    ("/admin/keys/AAAAAAAAAAAA", {"verbose": "1"}, "verbose"),
    ("/admin/providers", {"x": "1"}, "x"),
]


@pytest.mark.parametrize(("path", "params", "param"), QUERY_CASES)
async def test_bad_queries_are_400(api: Client, path: str, params: dict[str, str], param: str) -> None:
    err = error_of(await expect(await api.get(path, params=params), 400))
    assert err["param"] == param


async def test_a_repeated_query_parameter_is_400(api: Client) -> None:
    err = error_of(await expect(await api.get("/admin/keys?limit=1&limit=2"), 400))
    assert err["param"] == "limit"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("DELETE", "/admin/keys/AAAAAAAAAAAA", 405), ("PUT", "/admin/keys", 405), ("GET", "/admin/nothing", 404)])
async def test_unknown_routes_answer_in_the_error_shape(api: Client, method: str, path: str, status: int) -> None:
    error_of(await expect(await api.request(method, path), status))
