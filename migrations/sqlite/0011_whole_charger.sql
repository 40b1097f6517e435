-- Whole-charger reservations: connector 0 stands for "any connector of the charger", and its
-- slot overlaps every connector's slot of that charger (and theirs it). SQLite cannot change a
-- CHECK, so the table is rebuilt as 0009 left it, allowing connector 0, with its indexes, and the
-- overlap triggers are extended: besides the connector's own live slots (which never overlap each
-- other, so the latest one starting before the new end decides), a connector's booking looks at
-- the charger's connector-0 slots the same way, and a connector-0 booking at every live slot of
-- the charger. Writes are serialised (one writer), so the check cannot race.
CREATE TABLE reservations_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 2147483647),
    charger_id   TEXT    NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id INTEGER NOT NULL CHECK (connector_id >= 0),
    customer_id  INTEGER NOT NULL,
    id_tag       TEXT    NOT NULL,
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN
                     ('BOOKED', 'CHARGING_STARTED', 'CHARGING_ENDED', 'CANCELLED', 'EXPIRED')),
    charger_ack  TEXT    NOT NULL DEFAULT 'PENDING' CHECK (charger_ack IN
                     ('PENDING', 'ACCEPTED', 'OCCUPIED', 'FAULTED', 'REJECTED', 'UNAVAILABLE')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    cancel_owed  INTEGER NOT NULL DEFAULT 0,
    CHECK (end_ms > start_ms)
) STRICT;

INSERT INTO reservations_new (id, charger_id, connector_id, customer_id, id_tag, start_ms, end_ms,
                              status, charger_ack, created_at, updated_at, cancel_owed)
SELECT id, charger_id, connector_id, customer_id, id_tag, start_ms, end_ms,
       status, charger_ack, created_at, updated_at, cancel_owed
FROM reservations;

-- Keep the id sequence: a reservation id is OCPP's reservationId and is never handed out twice.
DELETE FROM sqlite_sequence WHERE name = 'reservations_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'reservations_new', seq FROM sqlite_sequence WHERE name = 'reservations';

DROP TABLE reservations;
ALTER TABLE reservations_new RENAME TO reservations;

CREATE INDEX reservations_live_slots ON reservations (charger_id, connector_id, start_ms, end_ms)
    WHERE status IN ('BOOKED', 'CHARGING_STARTED');
CREATE INDEX reservations_by_customer ON reservations (customer_id, start_ms);
CREATE INDEX reservations_by_start ON reservations (start_ms);
CREATE INDEX reservations_booked_by_end ON reservations (end_ms) WHERE status = 'BOOKED';
CREATE INDEX reservations_cancels_owed ON reservations (end_ms) WHERE cancel_owed = 1;

CREATE TRIGGER reservations_no_overlap_insert
BEFORE INSERT ON reservations
WHEN NEW.status IN ('BOOKED', 'CHARGING_STARTED') AND (
    EXISTS (
        SELECT 1 FROM (
            SELECT r.end_ms FROM reservations r
            WHERE r.charger_id = NEW.charger_id AND r.connector_id = NEW.connector_id
              AND r.status IN ('BOOKED', 'CHARGING_STARTED') AND r.start_ms < NEW.end_ms
            ORDER BY r.start_ms DESC LIMIT 1)
        WHERE end_ms > NEW.start_ms)
    OR (NEW.connector_id <> 0 AND EXISTS (
        SELECT 1 FROM (
            SELECT r.end_ms FROM reservations r
            WHERE r.charger_id = NEW.charger_id AND r.connector_id = 0
              AND r.status IN ('BOOKED', 'CHARGING_STARTED') AND r.start_ms < NEW.end_ms
            ORDER BY r.start_ms DESC LIMIT 1)
        WHERE end_ms > NEW.start_ms))
    OR (NEW.connector_id = 0 AND EXISTS (
        SELECT 1 FROM reservations r
        WHERE r.charger_id = NEW.charger_id AND r.status IN ('BOOKED', 'CHARGING_STARTED')
          AND r.start_ms < NEW.end_ms AND r.end_ms > NEW.start_ms)))
BEGIN
    SELECT RAISE(ABORT, 'reservations_no_overlap');
END;

CREATE TRIGGER reservations_no_overlap_update
BEFORE UPDATE OF charger_id, connector_id, start_ms, end_ms, status ON reservations
WHEN NEW.status IN ('BOOKED', 'CHARGING_STARTED') AND (
    EXISTS (
        SELECT 1 FROM (
            SELECT r.end_ms FROM reservations r
            WHERE r.id <> NEW.id AND r.charger_id = NEW.charger_id AND r.connector_id = NEW.connector_id
              AND r.status IN ('BOOKED', 'CHARGING_STARTED') AND r.start_ms < NEW.end_ms
            ORDER BY r.start_ms DESC LIMIT 1)
        WHERE end_ms > NEW.start_ms)
    OR (NEW.connector_id <> 0 AND EXISTS (
        SELECT 1 FROM (
            SELECT r.end_ms FROM reservations r
            WHERE r.id <> NEW.id AND r.charger_id = NEW.charger_id AND r.connector_id = 0
              AND r.status IN ('BOOKED', 'CHARGING_STARTED') AND r.start_ms < NEW.end_ms
            ORDER BY r.start_ms DESC LIMIT 1)
        WHERE end_ms > NEW.start_ms))
    OR (NEW.connector_id = 0 AND EXISTS (
        SELECT 1 FROM reservations r
        WHERE r.id <> NEW.id AND r.charger_id = NEW.charger_id AND r.status IN ('BOOKED', 'CHARGING_STARTED')
          AND r.start_ms < NEW.end_ms AND r.end_ms > NEW.start_ms)))
BEGIN
    SELECT RAISE(ABORT, 'reservations_no_overlap');
END;
