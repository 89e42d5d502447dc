-- Which key created each response a provider stores for us (OpenAI Responses API). Behind one provider
-- credential every key could otherwise read, cancel or continue every other key's stored responses:
-- GET/DELETE /v1/responses/{id}, its cancel and input_items, and previous_response_id are allowed only
-- to the key recorded here. The first record of an id wins; a later claim on it is refused.
CREATE TABLE IF NOT EXISTS response_owners (
    response_id text PRIMARY KEY,
    key_id      text NOT NULL,
    provider    text NOT NULL,
    model       text NOT NULL,           -- "provider/model", what the key's restrictions are checked against
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS response_owners_created ON response_owners (created_at);
