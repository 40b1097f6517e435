-- Security profiles (api.md "Charger security profiles"): 0 none, 1 Basic, 2 Basic over TLS,
-- 3 TLS client certificate. Chargers registered before keep what they had: 1 with a
-- password, else 0.
ALTER TABLE chargers ADD COLUMN security_profile integer  NOT NULL DEFAULT 0
    CHECK (security_profile BETWEEN 0 AND 3);
UPDATE chargers SET security_profile = 1 WHERE password_hash IS NOT NULL;

-- What chargers reported (SecurityEventNotification) and what the server saw (a charger
-- refused below its profile, throttled logins, profile changes). Kept after the charger is
-- deleted: it is an audit trail, so no foreign key.
CREATE TABLE security_events (
    id          bigserial   PRIMARY KEY,
    charger_id  text        COLLATE "C" NOT NULL,
    source      text        NOT NULL CHECK (source IN ('charger', 'server')),
    kind        text        NOT NULL,
    at          timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    tech_info   text,
    peer        text
);
CREATE INDEX security_events_by_charger ON security_events (charger_id, id);
