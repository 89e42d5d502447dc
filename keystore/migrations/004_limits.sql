-- Per-key limits and budgets (proxy/limits/): a JSON object of the limits set, NULL when none is.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS limits jsonb;
