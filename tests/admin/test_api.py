"""Every admin call on its happy path, against the real keystore (Postgres + Redis)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.admin import MODELS, AdminStack, Client, create, expect

KEY_FIELDS = {"id", "name", "account", "hint", "created_at", "expires_at", "last_used_at", "revoked_at",
              "status", "allowed_models", "allowed_providers", "rotated_from", "limits", "usage_this_month"}
UTC_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


async def test_create_returns_the_key_object_and_the_key_once(api: Client) -> None:
    body = await create(api, name="production", account="acme", expires_at=_future(),
                        allowed_models=["openai/gpt-4o"], allowed_providers=["openai"])
    assert set(body) == KEY_FIELDS | {"key"}
    assert body["key"].startswith("th-") and body["hint"].startswith("th-") and body["key"] != body["hint"]
    assert (body["name"], body["account"], body["status"]) == ("production", "acme", "active")
    assert UTC_Z.fullmatch(body["created_at"]) and UTC_Z.fullmatch(body["expires_at"])
    assert body["allowed_models"] == ["openai/gpt-4o"] and body["allowed_providers"] == ["openai"]
    shown = await expect(await api.get(f"/admin/keys/{body['id']}"), 200)
    assert set(shown) == KEY_FIELDS and body["key"] not in str(shown)


async def test_create_defaults(api: Client) -> None:
    body = await create(api, name="dev")
    assert body["account"] == "default"
    assert body["expires_at"] is None and body["last_used_at"] is None and body["revoked_at"] is None
    assert body["allowed_models"] == [] and body["allowed_providers"] == [] and body["rotated_from"] is None


async def test_expiry_with_an_offset_is_stored_in_utc(api: Client) -> None:
    body = await create(api, expires_at="2099-06-01T14:30:00+02:00")
    assert body["expires_at"] == "2099-06-01T12:30:00Z"


async def test_list_filters_by_account_and_status_and_pages(api: Client) -> None:
    ids = [(await create(api, name=f"k{i}", account="acme"))["id"] for i in range(3)]
    other = await create(api, name="other", account="globex")
    await expect(await api.post(f"/admin/keys/{ids[0]}/revoke"), 200)
    page = await expect(await api.get("/admin/keys", params={"account": "acme", "limit": "2"}), 200)
    assert [k["id"] for k in page["data"]] == ids[::-1][:2] and page["next_cursor"]
    rest = await expect(await api.get("/admin/keys", params={"account": "acme", "cursor": page["next_cursor"]}), 200)
    assert [k["id"] for k in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
    revoked = await expect(await api.get("/admin/keys", params={"status": "revoked"}), 200)
    assert [k["id"] for k in revoked["data"]] == [ids[0]]
    everything = await expect(await api.get("/admin/keys"), 200)
    assert {k["id"] for k in everything["data"]} == set(ids) | {other["id"]}


async def test_update_changes_fields_and_reports_propagation(api: Client, key_object: dict[str, Any]) -> None:
    body = await expect(await api.patch(f"/admin/keys/{key_object['id']}", json={
        "name": "renamed", "expires_at": _future(1), "allowed_models": ["local/llama-3.1-8b"]}), 200)
    assert body["name"] == "renamed" and body["allowed_models"] == ["local/llama-3.1-8b"]
    assert body["expires_at"] is not None
    assert body["propagation"] == {"instances": 1, "confirmed": 1, "published": True}
    cleared = await expect(await api.patch(f"/admin/keys/{key_object['id']}", json={"expires_at": None,
                                                                             "allowed_models": []}), 200)
    assert cleared["expires_at"] is None and cleared["allowed_models"] == []


async def test_revoke_is_idempotent_and_reports_propagation(api: Client, key_object: dict[str, Any]) -> None:
    first = await expect(await api.post(f"/admin/keys/{key_object['id']}/revoke"), 200)
    assert first["status"] == "revoked" and first["revoked_at"] is not None
    assert first["propagation"] == {"instances": 1, "confirmed": 1, "published": True}
    again = await expect(await api.post(f"/admin/keys/{key_object['id']}/revoke", json={}), 200)
    assert again["status"] == "revoked" and again["revoked_at"] == first["revoked_at"]


async def test_rotate_links_keys_and_inherits_restrictions(api: Client) -> None:
    old = await create(api, name="prod", account="acme", allowed_models=["openai/gpt-4o"], expires_at=_future())
    new = await expect(await api.post(f"/admin/keys/{old['id']}/rotate", json={"grace_seconds": 3600}), 201)
    assert new["rotated_from"] == old["id"] and new["id"] != old["id"] and new["key"].startswith("th-")
    assert (new["name"], new["account"], new["allowed_models"]) == ("prod", "acme", ["openai/gpt-4o"])
    assert new["expires_at"] is not None and new["previous"]["id"] == old["id"]
    assert new["previous"]["status"] == "active" and new["previous"]["revoked_at"] is not None
    assert new["propagation"]["published"] is True
    shown = await expect(await api.get(f"/admin/keys/{old['id']}"), 200)
    assert shown["revoked_at"] == new["previous"]["revoked_at"]


async def test_rotate_without_grace_ends_the_old_key_now(api: Client, key_object: dict[str, Any]) -> None:
    new = await expect(await api.post(f"/admin/keys/{key_object['id']}/rotate"), 201)
    assert new["previous"]["status"] == "revoked"
    old = await expect(await api.get(f"/admin/keys/{key_object['id']}"), 200)
    assert old["status"] == "revoked"


async def test_providers_lists_configured_models(api: Client) -> None:
    body = await expect(await api.get("/admin/providers"), 200)
    assert body == {"data": [{"name": "openai", "api": "openai", "models": MODELS[:2]},
                             {"name": "local", "api": "openai", "models": MODELS[2:]}]}


async def test_openapi_documents_every_route(api: Client, admin_stack: AdminStack) -> None:
    doc = await expect(await api.get("/admin/openapi.json"), 200)
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    served = {(r.method, r.resource.canonical) for app in (admin_stack.admin.app, *_subapps(admin_stack))
              for r in app.router.routes() if r.method != "HEAD" and r.resource is not None
              and (r.resource.canonical.startswith("/admin/") or r.resource.canonical == "/metrics")}
    assert len(served) == 11 and served <= documented  # the page's /ui routes are HTML, not API calls
    schemas = doc["components"]["schemas"]
    assert schemas["CreateKey"]["properties"]["allowed_models"]["items"]["enum"] == MODELS


def _subapps(admin_stack: AdminStack) -> list[Any]:
    return [r.resource._app for r in admin_stack.admin.app.router.routes()  # type: ignore[union-attr]
            if hasattr(r.resource, "_app")]


async def test_metrics_needs_no_token(anon: Client) -> None:
    resp = await anon.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "tokenhub_requests" in await resp.text()
