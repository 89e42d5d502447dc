"""No table column and no Redis value ever holds a key or its secret (issue 2 §3)."""

import pytest

from keystore import Actor, RevokedKey, keygen


async def everything_in_postgres(pool) -> str:
    tables = [r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert {"api_keys", "audit_log", "key_changes"} <= set(tables)
    dump = []
    for t in tables:
        dump += [r[0] for r in await pool.fetch(f'SELECT row_to_json(x)::text FROM "{t}" AS x')]
    return "\n".join(dump)


async def everything_in_redis(redis, namespace) -> str:
    out = []
    async for k in redis.scan_iter(match=f"{namespace}:*"):
        kind = (await redis.type(k)).decode()
        if kind == "string":
            out.append(await redis.get(k))
        elif kind == "list":
            out += await redis.lrange(k, 0, -1)
        elif kind == "zset":
            out += await redis.zrange(k, 0, -1)
    return "\n".join(v.decode() for v in out)


async def test_no_key_material_at_rest_after_a_full_lifecycle(make_store, pool, redis, namespace) -> None:
    store = await make_store()
    other = await make_store()
    a = await store.create(Actor("alice"), name="a", allowed_models=["openai/gpt-4o"])
    b = await store.create(Actor("alice"), name="b")
    for s in (store, other):
        await s.authenticate(a.secret)
        await s.authenticate(b.secret)
    rotated, _, _ = await store.rotate(Actor("bob"), a.key.id, grace_seconds=60)
    await other.authenticate(rotated.secret)
    await store.update(Actor("bob"), b.key.id, name="b2")
    await store.revoke(Actor("bob"), b.key.id)
    with pytest.raises(RevokedKey):
        await other.authenticate(b.secret)
    await store.flush_last_used()
    pg, rd = await everything_in_postgres(pool), await everything_in_redis(redis, namespace)
    assert a.key.id in pg and a.key.id in rd  # the dumps are real
    for issued in (a, b, rotated):
        _, secret = keygen.parse(issued.secret)
        for blob in (pg, rd):
            assert issued.secret not in blob and secret not in blob and secret[:16] not in blob
