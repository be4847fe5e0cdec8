-- Accounts and their webhook secrets. Secret columns hold values sealed with
-- the service's secret key (store/seal), never plaintext.
CREATE TABLE accounts (
    sid                  text        PRIMARY KEY,
    aliases              text[]      NOT NULL DEFAULT '{}',
    friendly_name        text        NOT NULL DEFAULT '',
    auth_token           text        NOT NULL,
    previous_auth_token  text        NOT NULL DEFAULT '',
    previous_expire_time timestamptz,
    -- [{"id": "...", "secret": "<sealed>", "algorithms": ["HMAC_SHA256"]}]
    shared_keys          jsonb       NOT NULL DEFAULT '[]',
    create_time          timestamptz NOT NULL,
    update_time          timestamptz NOT NULL,
    version              bigint      NOT NULL
);

-- One row per alias: the primary key makes aliases unique across accounts.
CREATE TABLE account_aliases (
    alias text PRIMARY KEY,
    sid   text NOT NULL REFERENCES accounts (sid) ON DELETE CASCADE
);
CREATE INDEX account_aliases_sid ON account_aliases (sid);

-- Every change to an account, made by any replica or by hand, is announced on
-- channel twilioguard_accounts with the account SID as payload. Notifications
-- are delivered when the changing transaction commits.
CREATE FUNCTION twilioguard_notify_account() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('twilioguard_accounts', OLD.sid);
    ELSE
        PERFORM pg_notify('twilioguard_accounts', NEW.sid);
        IF TG_OP = 'UPDATE' AND OLD.sid <> NEW.sid THEN
            PERFORM pg_notify('twilioguard_accounts', OLD.sid);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER accounts_notify
AFTER INSERT OR UPDATE OR DELETE ON accounts
FOR EACH ROW EXECUTE FUNCTION twilioguard_notify_account();
