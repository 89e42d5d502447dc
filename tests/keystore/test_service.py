"""Key lifecycle through the KeyStore facade: create, get, list, update, revoke, rotate, audit, last used."""

from datetime import timedelta

import pytest

from keystore import Actor, ExpiredKey, InvalidInput, NotFound, RevokedKey

ALICE = Actor("alice", request_id="req-1")


async def test_created_key_authenticates_and_reads_back(make_store) -> None:
    store = await make_store()
    issued = await store.create(ALICE, name="production", account="acme", allowed_models=["openai/gpt-4o"])
    key = await store.authenticate(issued.secret)
    assert key.id == issued.key.id and key.allowed_models == ("openai/gpt-4o",)
    got = await store.get(issued.key.id)
    assert (got.name, got.account, got.status(store.clock.time())) == ("production", "acme", "active")


@pytest.mark.parametrize("kwargs, field", [
    ({"name": ""}, "name"),
    ({"name": "x" * 1_000_000}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"name": "ok", "account": "bad account"}, "account"),
    ({"name": "ok", "allowed_models": "openai/gpt-4o"}, "allowed_models"),
    ({"name": "ok", "allowed_providers": [1]}, "allowed_providers"),
])
async def test_create_rejects_bad_input_naming_the_field(make_store, kwargs, field) -> None:
    store = await make_store(start=False)
    with pytest.raises(InvalidInput) as err:
        await store.create(ALICE, **kwargs)
    assert err.value.field == field


async def test_create_rejects_a_past_expiry(make_store) -> None:
    store = await make_store(start=False)
    with pytest.raises(InvalidInput):
        await store.create(ALICE, name="x", expires_at=store.clock.now() - timedelta(seconds=1))


async def test_list_filters_by_account_and_status_and_paginates(make_store) -> None:
    store = await make_store(start=False)
    ids = [(await store.create(ALICE, name=f"k{i}", account="acme")).key.id for i in range(5)]
    await store.create(ALICE, name="other", account="globex")
    await store.revoke(ALICE, ids[0])
    page1 = await store.list_keys(account="acme", limit=2)
    page2 = await store.list_keys(account="acme", limit=2, cursor=page1.next_cursor)
    page3 = await store.list_keys(account="acme", limit=2, cursor=page2.next_cursor)
    seen = [k.id for p in (page1, page2, page3) for k in p.data]
    assert sorted(seen) == sorted(ids) and page3.next_cursor is None
    revoked = await store.list_keys(status="revoked")
    assert [k.id for k in revoked.data] == [ids[0]]
    assert len((await store.list_keys(status="active")).data) == 5


async def test_list_rejects_unknown_status_and_foreign_cursor(make_store) -> None:
    store = await make_store(start=False)
    with pytest.raises(InvalidInput):
        await store.list_keys(status="sleeping")
    with pytest.raises(InvalidInput):
        await store.list_keys(cursor="not-a-cursor")


async def test_revoke_is_idempotent_and_immediate(make_store) -> None:
    store = await make_store()
    issued = await store.create(ALICE, name="dev")
    await store.authenticate(issued.secret)
    first, _ = await store.revoke(ALICE, issued.key.id)
    again, _ = await store.revoke(ALICE, issued.key.id)
    assert first.revoked_at == again.revoked_at
    with pytest.raises(RevokedKey):
        await store.authenticate(issued.secret)


async def test_unknown_id_is_not_found(make_store) -> None:
    store = await make_store(start=False)
    for call in (store.get("AAAAAAAAAAAA"), store.revoke(ALICE, "AAAAAAAAAAAA"), store.get("../etc")):
        with pytest.raises(NotFound):
            await call


async def test_rotate_links_keys_and_keeps_old_alive_for_the_grace(make_store, clock) -> None:
    store = await make_store()
    old = await store.create(ALICE, name="prod", account="acme", allowed_providers=["openai"],
                             expires_at=store.now() + timedelta(days=30))  # Postgres time
    new, _, _ = await store.rotate(ALICE, old.key.id, grace_seconds=60)
    assert new.key.rotated_from == old.key.id
    assert (new.key.name, new.key.account, new.key.allowed_providers) == ("prod", "acme", ("openai",))
    assert new.key.expires_at - new.key.created_at == timedelta(days=30)
    await store.authenticate(old.secret)
    await store.authenticate(new.secret)
    clock.advance(61)
    with pytest.raises(RevokedKey):
        await store.authenticate(old.secret)
    await store.authenticate(new.secret)


async def test_rotate_without_grace_ends_the_old_key_now(make_store) -> None:
    store = await make_store()
    old = await store.create(ALICE, name="prod")
    await store.authenticate(old.secret)
    await store.rotate(ALICE, old.key.id)
    with pytest.raises(RevokedKey):
        await store.authenticate(old.secret)


async def test_update_narrows_and_is_audited(make_store) -> None:
    store = await make_store()
    issued = await store.create(ALICE, name="prod")
    await store.authenticate(issued.secret)
    await store.update(ALICE, issued.key.id, allowed_models=["openai/gpt-4o-mini"], name="prod-2")
    assert (await store.authenticate(issued.secret)).allowed_models == ("openai/gpt-4o-mini",)
    events = await store.audit(key_id=issued.key.id)
    assert [e.action for e in events] == ["key.update", "key.create"]
    assert events[0].actor == "alice" and events[0].request_id == "req-1"
    assert events[0].details["allowed_models"] == ["openai/gpt-4o-mini"]


async def test_expiry_reached_while_warm_rejects_without_io(make_store, clock, queries) -> None:
    store = await make_store(poll_interval_seconds=3600)
    issued = await store.create(ALICE, name="short", expires_at=clock.now() + timedelta(seconds=30))
    await store.authenticate(issued.secret)
    before = (queries.count, store.snapshot().argon2_verifies)
    clock.advance(30)
    with pytest.raises(ExpiredKey):
        await store.authenticate(issued.secret)
    assert (queries.count, store.snapshot().argon2_verifies) == before


async def test_last_used_is_batched_into_one_statement(make_store, clock, queries) -> None:
    store = await make_store(last_used_flush_seconds=3600)
    keys = [await store.create(ALICE, name=f"k{i}") for i in range(3)]
    for k in keys:
        await store.authenticate(k.secret)
    writes_before = sum("UPDATE api_keys" in q for q in queries.queries)
    for _ in range(50):
        for k in keys:
            await store.authenticate(k.secret)
    assert sum("UPDATE api_keys" in q for q in queries.queries) == writes_before  # none per request
    assert await store.flush_last_used() == 3
    assert sum("last_used_at" in q and "UPDATE" in q for q in queries.queries) == 1
    got = await store.get(keys[0].key.id)
    assert got.last_used_at is not None and abs(got.last_used_at.timestamp() - clock.time()) < 1
