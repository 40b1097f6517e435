-- The fleet's configuration key policy: the value each key should have on every charger
-- (ChangeConfiguration after Boot when a charger's snapshot differs). Replaced as a whole by
-- `PUT /fleet/configuration-policy`.
CREATE TABLE configuration_policy (
    key        text        COLLATE "C" PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL
);
