-- Usage metering: per key, per model (provider/model), per UTC hour. Written by each proxy instance in
-- batches; a batch id is recorded in the same statement, so a batch retried after a lost answer is
-- never counted twice.
CREATE TABLE IF NOT EXISTS usage_hourly (
    key_id              text NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    hour                timestamptz NOT NULL,
    model               text NOT NULL,
    requests            bigint NOT NULL DEFAULT 0,  -- every forwarded request, metered or not
    unmetered_requests  bigint NOT NULL DEFAULT 0,  -- of which the provider's figure is missing
    input_tokens        bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,  -- part of input_tokens
    output_tokens       bigint NOT NULL DEFAULT 0,
    usd                 numeric(24, 9) NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, hour, model)
);

CREATE TABLE IF NOT EXISTS usage_batches (
    id uuid PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS usage_batches_at ON usage_batches (at);
