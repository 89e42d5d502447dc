"""`limits` on the key record: set on create, merged by update (null clears one, all-null clears the
field), copied by rotate, checked by the keystore itself, and carried by the authenticated record."""

from __future__ import annotations

import pytest

from keystore import Actor, InvalidInput, KeyLimits

ACTOR = Actor("test")


async def test_create_update_rotate_carry_the_limits(make_store) -> None:
    store = await make_store()
    issued = await store.create(ACTOR, name="l", limits={"requests_per_minute": 60, "usd_per_month": 5})
    assert issued.key.limits == KeyLimits(requests_per_minute=60, usd_per_month=5.0)
    key, _ = await store.update(ACTOR, issued.key.id, limits={"tokens_per_minute": 1000, "usd_per_month": None})
    assert key.limits == KeyLimits(requests_per_minute=60, tokens_per_minute=1000)  # merged, one cleared
    new, _, _ = await store.rotate(ACTOR, issued.key.id)
    assert new.key.limits == key.limits
    assert (await store.authenticate(new.secret)).limits == key.limits  # what the request path sees
    cleared, _ = await store.update(ACTOR, new.key.id, limits={"requests_per_minute": None, "tokens_per_minute": None})
    assert cleared.limits is None  # nothing limited: the request path pays one attribute read


@pytest.mark.parametrize("limits", [{"requests_per_minute": 0}, {"tokens_per_minute": 1.5},
                                    {"usd_per_month": -1}, {"max_tokens_per_request": True},
                                    {"requests_per_hour": 5}, {"tokens_per_month": "100"}])
async def test_the_keystore_refuses_bad_limits_naming_the_field(make_store, limits) -> None:
    store = await make_store()
    with pytest.raises(InvalidInput) as refused:
        await store.create(ACTOR, name="bad", limits=limits)
    assert refused.value.field == "limits"
    key = (await store.create(ACTOR, name="good")).key
    with pytest.raises(InvalidInput):
        await store.update(ACTOR, key.id, limits=limits)
