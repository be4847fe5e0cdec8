-- Accounts suspended at Twilio are kept and marked; their webhooks still
-- verify.
ALTER TABLE accounts ADD COLUMN suspended boolean NOT NULL DEFAULT false;
