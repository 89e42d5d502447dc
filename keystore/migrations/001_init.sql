-- Keys, their change log (the revocation backstop) and the audit trail.
CREATE TABLE IF NOT EXISTS api_keys (
    id                text PRIMARY KEY,
    name              text NOT NULL,
    account           text NOT NULL,
    hint              text NOT NULL,
    secret_hash       text NOT NULL,            -- argon2id of the secret; never the secret itself
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz,
    last_used_at      timestamptz,
    revoked_at        timestamptz,              -- may lie in the future: a rotation's grace period
    allowed_models    text[] NOT NULL DEFAULT '{}',
    allowed_providers text[] NOT NULL DEFAULT '{}',
    rotated_from      text REFERENCES api_keys (id),
    version           bigint NOT NULL DEFAULT 1 -- bumped by every mutation; guards cache fills
);
CREATE INDEX IF NOT EXISTS api_keys_account_created ON api_keys (account, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS api_keys_created ON api_keys (created_at DESC, id DESC);

-- Every mutation appends here in the same transaction; each instance polls it so that a lost
-- pub/sub message costs bounded staleness, not unbounded.
CREATE TABLE IF NOT EXISTS key_changes (
    seq     bigserial PRIMARY KEY,
    key_id  text NOT NULL,
    version bigint NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS key_changes_at ON key_changes (at);

CREATE TABLE IF NOT EXISTS audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    key_id     text,
    request_id text,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_key ON audit_log (key_id, id DESC);
