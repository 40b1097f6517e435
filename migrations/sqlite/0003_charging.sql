-- Charging: transactions the chargers report, their energy readings, and what the charger
-- dispatcher still owes chargers.

-- 1 when the charger may hold a reservation that was cancelled: a CancelReservation is owed.
ALTER TABLE reservations ADD COLUMN cancel_owed INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reservations_booked_by_end ON reservations (end_ms) WHERE status = 'BOOKED';
CREATE INDEX reservations_cancels_owed ON reservations (end_ms) WHERE cancel_owed = 1;

-- Transactions outlive a deleted charger or reservation (history and billing), so charger_id
-- and reservation_id are plain values, not foreign keys. id is OCPP's 32-bit transactionId.
CREATE TABLE transactions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 2147483647),
    charger_id     TEXT    NOT NULL,
    connector_id   INTEGER NOT NULL CHECK (connector_id >= 1),
    id_tag         TEXT    NOT NULL,
    -- NULL for a refused start: nothing is charged to anyone
    customer_id    INTEGER REFERENCES customers (id),
    reservation_id INTEGER UNIQUE,
    status         TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'ENDED', 'REFUSED')),
    auth_status    TEXT    NOT NULL,
    meter_start_wh INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    meter_stop_wh  INTEGER,
    stopped_at     INTEGER,
    stop_reason    TEXT,
    last_meter_wh  INTEGER,
    last_meter_at  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
-- A charger re-sending a StartTransaction it got no answer to must get the same transaction.
CREATE UNIQUE INDEX transactions_start_key
    ON transactions (charger_id, connector_id, started_at, meter_start_wh, id_tag);
CREATE INDEX transactions_active ON transactions (charger_id, connector_id) WHERE status = 'ACTIVE';
CREATE INDEX transactions_by_customer ON transactions (customer_id, id);

-- Energy register readings (Energy.Active.Import.Register), in Wh.
CREATE TABLE meter_values (
    transaction_id INTEGER NOT NULL REFERENCES transactions (id),
    at             INTEGER NOT NULL,
    wh             INTEGER NOT NULL
) STRICT;
CREATE INDEX meter_values_by_transaction ON meter_values (transaction_id, at);
