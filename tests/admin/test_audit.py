"""The audit log: every mutation, who did it, when, under which request id; never a secret."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from tests.support.admin import Client, create, expect

UTC_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


async def _mutate_everything(api: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    headers = {"X-Request-ID": "req-create-1"}
    key = await expect(await api.post("/admin/keys", json={"name": "audited"}, headers=headers), 201)
    await expect(await api.patch(f"/admin/keys/{key['id']}", json={"name": "renamed"},
                                 headers={"X-Request-ID": "req-update-1"}), 200)
    new = await expect(await api.post(f"/admin/keys/{key['id']}/rotate", json={"grace_seconds": 60},
                                      headers={"X-Request-ID": "req-rotate-1"}), 201)
    await expect(await api.post(f"/admin/keys/{new['id']}/revoke", headers={"X-Request-ID": "req-revoke-1"}), 200)
    return key, new


async def test_every_mutation_is_recorded_with_actor_time_and_request_id(api: Client) -> None:
    key, new = await _mutate_everything(api)
    events = (await expect(await api.get("/admin/audit"), 200))["data"]
    seen = [(e["action"], e["key_id"], e["request_id"], e["actor"]) for e in events]
    assert seen == [
        ("key.revoke", new["id"], "req-revoke-1", "admin"),
        ("key.create", new["id"], "req-rotate-1", "admin"),
        ("key.rotate", key["id"], "req-rotate-1", "admin"),
        ("key.update", key["id"], "req-update-1", "admin"),
        ("key.create", key["id"], "req-create-1", "admin"),
    ]
    assert all(UTC_Z.fullmatch(e["at"]) for e in events)
    assert events[2]["details"] == {"grace_seconds": 60.0, "new_key_id": new["id"]}


async def test_audit_filters_by_key_and_limits(api: Client) -> None:
    key, _ = await _mutate_everything(api)
    mine = (await expect(await api.get("/admin/audit", params={"key_id": key["id"]}), 200))["data"]
    assert [e["action"] for e in mine] == ["key.rotate", "key.update", "key.create"]
    latest = (await expect(await api.get("/admin/audit", params={"limit": "2"}), 200))["data"]
    assert [e["action"] for e in latest] == ["key.revoke", "key.create"]
    none = (await expect(await api.get("/admin/audit", params={"key_id": "AAAAAAAAAAAA"}), 200))["data"]
    assert none == []


async def test_reads_and_refusals_are_not_audited(api: Client) -> None:
    key = await create(api)
    await api.get("/admin/keys")
    await api.get(f"/admin/keys/{key['id']}")
    await api.patch(f"/admin/keys/{key['id']}", json={"expires_at": "2001-01-01T00:00:00Z"})
    events = (await expect(await api.get("/admin/audit"), 200))["data"]
    assert [e["action"] for e in events] == ["key.create"]


async def test_no_secret_reaches_the_audit_log(api: Client, pool: asyncpg.Pool) -> None:
    key, new = await _mutate_everything(api)
    hashes = [r["secret_hash"] for r in await pool.fetch("SELECT secret_hash FROM api_keys")]
    stored = await pool.fetchval("SELECT string_agg(actor || action || coalesce(key_id, '') || details::text, ' ')"
                                 " FROM audit_log")
    served = await (await api.get("/admin/audit")).text()
    for secret in [key["key"], new["key"], key["key"][16:], new["key"][16:], *hashes]:
        assert secret not in stored and secret not in served
    assert len(hashes) == 2


async def test_a_limits_change_is_audited_as_an_object_like_on_create(api: Client) -> None:
    limits = {"requests_per_minute": 5}
    key = await expect(await api.post("/admin/keys", json={"name": "limited", "limits": limits}), 201)
    await expect(await api.patch(f"/admin/keys/{key['id']}",
                                 json={"limits": {"requests_per_minute": None, "tokens_per_minute": 100}}), 200)
    events = (await expect(await api.get("/admin/audit", params={"key_id": key["id"]}), 200))["data"]
    assert events[0]["action"] == "key.update"
    assert events[0]["details"]["limits"] == {"requests_per_minute": None, "tokens_per_minute": 100}
    assert isinstance(events[1]["details"]["limits"], dict)
