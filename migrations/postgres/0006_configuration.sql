-- Each charger's configuration as the central system last read it (GetConfiguration): the keys
-- as JSON `[{key, value, readonly}]`, the unknown keys as a JSON array of strings, and when.
-- One row per charger, replaced on every read; gone with the charger.
CREATE TABLE charger_configuration (
    charger_id   text        COLLATE "C" PRIMARY KEY REFERENCES chargers (id) ON DELETE CASCADE,
    fetched_at   timestamptz NOT NULL,
    keys         jsonb       NOT NULL,
    unknown_keys jsonb       NOT NULL
);
