-- Issue 12: Postgres is the only authority.
-- `revoked` is the revoke as a state, in force from its commit whatever any clock says; `revoked_at`
-- keeps the (Postgres) time it happened, or a rotation's scheduled end when it lies in the future.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS revoked boolean NOT NULL DEFAULT false;
UPDATE api_keys SET revoked = true WHERE revoked_at IS NOT NULL AND revoked_at <= clock_timestamp() AND NOT revoked;

-- Fleet secrets that must live where Redis cannot reach: the MAC key of the key records, revocation
-- messages and acknowledgements written to Redis. `tokenhub migrate` generates it (keystore/pg.py).
CREATE TABLE IF NOT EXISTS tokenhub_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
