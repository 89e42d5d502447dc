"""Keystore behaviours the benchmark found (see bench/README.md, "Findings"), now fixed."""

from __future__ import annotations

import pytest

from keystore import Actor, KeystoreError

from bench.keys import wrong_secret
from tests.support import FakeClock, StoreFactory

ACTOR = Actor("bench-test")


async def test_wrong_secrets_for_an_id_do_not_lock_out_its_rightful_key(make_store: StoreFactory) -> None:
    """The failure limit is per (key id, client): the flooding client is refused, the holder is not."""
    store = await make_store()
    issued = await store.create(ACTOR, name="victim")
    for _ in range(store.settings.failure_threshold + 5):
        with pytest.raises(KeystoreError):
            await store.authenticate(wrong_secret(issued.key.id), client="10.0.0.66")
    assert (await store.authenticate(issued.secret, client="10.0.0.7")).id == issued.key.id


async def test_a_warm_key_past_its_trust_window_is_rechecked_without_argon2(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store()
    issued = await store.create(ACTOR, name="warm")
    await store.authenticate(issued.secret)
    verifies = store.snapshot().argon2_verifies
    clock.advance(store.settings.cache_ttl_seconds + 1)
    await store.authenticate(issued.secret)
    assert store.snapshot().argon2_verifies == verifies
