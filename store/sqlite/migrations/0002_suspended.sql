-- Accounts suspended at Twilio are kept and marked; their webhooks still
-- verify.
ALTER TABLE accounts ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1));
