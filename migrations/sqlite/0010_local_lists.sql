-- Each charger's local authorization list as the central system last synced it: the version the
-- charger accepted (0: none yet), when it last accepted one, and its last answer. One row per
-- charger, gone with the charger. Telemetry of the sync, not a ledger change: no events.
CREATE TABLE local_lists (
    charger_id TEXT    PRIMARY KEY NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    synced_at  INTEGER,
    status     TEXT    NOT NULL
) STRICT;

-- The list version is the seq of the last customer change: this keeps finding it one index step,
-- and costs the hot event inserts (bookings, transactions) only the predicate test.
CREATE INDEX events_customer_changes ON events (seq)
    WHERE kind IN ('CustomerCreated', 'CustomerUpdated', 'CustomerDeleted');
