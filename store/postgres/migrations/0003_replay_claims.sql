-- Verified webhooks, for duplicate detection (package replay): one row per
-- key while its replay window lasts. A key is 16 bytes of a SHA-256 of the
-- account and the webhook's idempotency token, or of the account, signature
-- and URL; nothing else of a webhook is kept. Claims treat an expired row as
-- absent; every replica deletes expired rows in small batches.
CREATE TABLE replay_claims (
    key         bytea       PRIMARY KEY,
    first_seen  timestamptz NOT NULL,
    expire_time timestamptz NOT NULL
);
CREATE INDEX replay_claims_expire_time ON replay_claims (expire_time);
