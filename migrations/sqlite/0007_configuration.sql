-- Each charger's configuration as the central system last read it (GetConfiguration): the keys
-- as JSON `[{key, value, readonly}]`, the unknown keys as a JSON array of strings, and when.
-- One row per charger, replaced on every read; gone with the charger.
CREATE TABLE charger_configuration (
    charger_id   TEXT    PRIMARY KEY NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    fetched_at   INTEGER NOT NULL,
    keys         TEXT    NOT NULL,
    unknown_keys TEXT    NOT NULL
) STRICT;
