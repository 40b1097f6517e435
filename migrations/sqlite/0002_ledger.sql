-- The booking ledger: customers, their idTags, reservations and the event log.

CREATE TABLE customers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    -- hex SHA-256 of the bearer token; the token itself is never stored
    token_digest TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL
) STRICT;

-- OCPP compares idTags case-insensitively: id_tag_key is the lower-case form and unique.
CREATE TABLE id_tags (
    id_tag_key  TEXT    PRIMARY KEY NOT NULL,
    id_tag      TEXT    NOT NULL,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL
) STRICT;
CREATE INDEX id_tags_by_customer ON id_tags (customer_id, position);

-- Slots are half-open [start_ms, end_ms) in Unix milliseconds, so overlap is a numeric test.
-- id stays within OCPP's 32-bit reservationId.
CREATE TABLE reservations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 2147483647),
    charger_id   TEXT    NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id INTEGER NOT NULL CHECK (connector_id >= 1),
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    id_tag       TEXT    NOT NULL,
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN
                     ('BOOKED', 'CHARGING_STARTED', 'CHARGING_ENDED', 'CANCELLED', 'EXPIRED')),
    charger_ack  TEXT    NOT NULL DEFAULT 'PENDING' CHECK (charger_ack IN
                     ('PENDING', 'ACCEPTED', 'OCCUPIED', 'FAULTED', 'REJECTED', 'UNAVAILABLE')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK (end_ms > start_ms)
) STRICT;
-- Covers the overlap check: the lookup never touches the table.
CREATE INDEX reservations_live_slots ON reservations (charger_id, connector_id, start_ms, end_ms)
    WHERE status IN ('BOOKED', 'CHARGING_STARTED');
CREATE INDEX reservations_by_customer ON reservations (customer_id, start_ms);
CREATE INDEX reservations_by_start ON reservations (start_ms);

-- No double booking, enforced by the database: a live reservation may not overlap another live
-- one on the same connector. Writers also hold the write lock from the start of their
-- transaction (BEGIN IMMEDIATE), so no two bookings can interleave between check and insert.
--
-- Live slots on one connector never overlap (these triggers keep it so), so sorted by start they
-- are sorted by end too: only the latest-starting live slot that starts before the new end can
-- reach into the new slot. Checking that one is O(log n) instead of a scan of the connector's
-- history.
CREATE TRIGGER reservations_no_overlap_insert
BEFORE INSERT ON reservations
WHEN NEW.status IN ('BOOKED', 'CHARGING_STARTED') AND EXISTS (
    SELECT 1 FROM (
        SELECT r.end_ms FROM reservations r
        WHERE r.charger_id = NEW.charger_id AND r.connector_id = NEW.connector_id
          AND r.status IN ('BOOKED', 'CHARGING_STARTED') AND r.start_ms < NEW.end_ms
        ORDER BY r.start_ms DESC LIMIT 1)
    WHERE end_ms > NEW.start_ms)
BEGIN
    SELECT RAISE(ABORT, 'reservations_no_overlap');
END;

CREATE TRIGGER reservations_no_overlap_update
BEFORE UPDATE OF charger_id, connector_id, start_ms, end_ms, status ON reservations
WHEN NEW.status IN ('BOOKED', 'CHARGING_STARTED') AND EXISTS (
    SELECT 1 FROM (
        SELECT r.end_ms FROM reservations r
        WHERE r.id <> NEW.id
          AND r.charger_id = NEW.charger_id AND r.connector_id = NEW.connector_id
          AND r.status IN ('BOOKED', 'CHARGING_STARTED') AND r.start_ms < NEW.end_ms
        ORDER BY r.start_ms DESC LIMIT 1)
    WHERE end_ms > NEW.start_ms)
BEGIN
    SELECT RAISE(ABORT, 'reservations_no_overlap');
END;

-- The event log. AUTOINCREMENT never reuses a number, a rolled-back insert takes none, and
-- SQLite commits one writer at a time: seq is gap-free and in commit order.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    kind           TEXT    NOT NULL,
    charger_id     TEXT,
    customer_id    INTEGER,
    reservation_id INTEGER,
    data           TEXT    NOT NULL
) STRICT;
