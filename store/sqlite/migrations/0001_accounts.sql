-- Accounts and their credentials. Every secret column holds a value sealed
-- by store/seal (AES-256-GCM, bound to the SID and field); nothing secret is
-- stored in plain text. Times are Unix nanoseconds in UTC.
CREATE TABLE accounts (
    sid                  TEXT    NOT NULL PRIMARY KEY,
    friendly_name        TEXT    NOT NULL DEFAULT '',
    auth_token           TEXT    NOT NULL,
    previous_auth_token  TEXT    NOT NULL DEFAULT '', -- sealed, or '' when none
    previous_expire_time INTEGER,                     -- NULL when none
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL,
    version              INTEGER NOT NULL
) STRICT;

-- Other unique names of an account, in the order given.
CREATE TABLE account_aliases (
    alias    TEXT    NOT NULL PRIMARY KEY,
    sid      TEXT    NOT NULL REFERENCES accounts (sid) ON DELETE CASCADE,
    position INTEGER NOT NULL
) STRICT;

CREATE INDEX account_aliases_by_sid ON account_aliases (sid, position);

-- Twilio webhook SharedKeys, in the order given.
CREATE TABLE shared_keys (
    sid        TEXT    NOT NULL REFERENCES accounts (sid) ON DELETE CASCADE,
    key_id     TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    secret     TEXT    NOT NULL,  -- sealed
    algorithms TEXT    NOT NULL,  -- comma-separated store.Algorithm values
    PRIMARY KEY (sid, key_id)
) STRICT;
