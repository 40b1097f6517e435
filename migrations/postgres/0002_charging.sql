-- Charging: transactions the chargers report, their energy readings, and what the charger
-- dispatcher still owes chargers. The same tables as migrations/sqlite/0003_charging.sql.

-- true when the charger may hold a reservation that was cancelled: a CancelReservation is owed.
ALTER TABLE reservations ADD COLUMN cancel_owed boolean NOT NULL DEFAULT false;
CREATE INDEX reservations_booked_by_end ON reservations (end_at) WHERE status = 'BOOKED';
CREATE INDEX reservations_cancels_owed ON reservations (end_at) WHERE cancel_owed;

-- Transactions outlive a deleted charger or reservation (history and billing), so charger_id
-- and reservation_id are plain values, not foreign keys. id is OCPP's 32-bit transactionId:
-- an integer identity stops at 2147483647.
CREATE TABLE transactions (
    id             integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY CHECK (id >= 1),
    charger_id     text        COLLATE "C" NOT NULL,
    connector_id   integer     NOT NULL CHECK (connector_id >= 1),
    id_tag         text        NOT NULL,
    -- NULL for a refused start: nothing is charged to anyone
    customer_id    bigint      REFERENCES customers (id),
    -- One transaction per reservation: two starts racing for one slot cannot both link it.
    reservation_id integer     UNIQUE,
    status         text        NOT NULL CHECK (status IN ('ACTIVE', 'ENDED', 'REFUSED')),
    auth_status    text        NOT NULL,
    meter_start_wh bigint      NOT NULL,
    started_at     timestamptz NOT NULL,
    meter_stop_wh  bigint,
    stopped_at     timestamptz,
    stop_reason    text,
    last_meter_wh  bigint,
    last_meter_at  timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
-- A charger re-sending a StartTransaction it got no answer to must get the same transaction.
CREATE UNIQUE INDEX transactions_start_key
    ON transactions (charger_id, connector_id, started_at, meter_start_wh, id_tag);
CREATE INDEX transactions_active ON transactions (charger_id, connector_id) WHERE status = 'ACTIVE';
CREATE INDEX transactions_by_customer ON transactions (customer_id, id);
CREATE INDEX transactions_by_charger ON transactions (charger_id, id);

-- Energy register readings (Energy.Active.Import.Register), in Wh.
CREATE TABLE meter_values (
    transaction_id integer     NOT NULL REFERENCES transactions (id),
    at             timestamptz NOT NULL,
    wh             bigint      NOT NULL
);
CREATE INDEX meter_values_by_transaction ON meter_values (transaction_id, at);
