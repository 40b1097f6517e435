-- The whole ledger for PostgreSQL, the shared multi-node backend: the same tables as
-- migrations/sqlite in native types. Instants are timestamptz; the Rust side speaks Unix
-- milliseconds (like SQLite), converted exactly by ms_to_ts / ts_to_ms below, because sqlx is
-- built without a date-time feature.

-- Needed for `=` on text/integer inside the GiST exclusion constraint on reservations.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Exact integer arithmetic both ways (no float rounding): the slot bounds compare equal after a
-- round trip, and [10:00, 11:00) still touches [11:00, 12:00) without overlapping.
-- STABLE (like the operators inside) so the planner inlines them.
CREATE FUNCTION ms_to_ts(ms bigint) RETURNS timestamptz
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT timestamptz '1970-01-01 00:00:00+00' + ms * interval '1 millisecond' $$;

CREATE FUNCTION ts_to_ms(ts timestamptz) RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$ SELECT floor(extract(epoch FROM ts) * 1000)::bigint $$;

-- Chargers registered by operators, with the last state they reported. Charger ids sort in
-- byte order (COLLATE "C", like SQLite), whatever the database's default collation: paging by
-- id gives the same pages on both backends, straight from the primary key index.
CREATE TABLE chargers (
    id                       text        COLLATE "C" PRIMARY KEY,
    name                     text,
    connectors               integer     NOT NULL CHECK (connectors BETWEEN 1 AND 100),
    password_hash            text,
    vendor                   text,
    model                    text,
    serial_number            text,
    charge_box_serial_number text,
    firmware_version         text,
    iccid                    text,
    imsi                     text,
    meter_type               text,
    meter_serial_number      text,
    last_boot_at             timestamptz,
    last_seen_at             timestamptz,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);

-- The last StatusNotification per connector; connector 0 is the charger itself.
CREATE TABLE connector_status (
    charger_id        text        COLLATE "C" NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id      integer     NOT NULL CHECK (connector_id >= 0),
    status            text        NOT NULL,
    error_code        text        NOT NULL,
    info              text,
    vendor_error_code text,
    reported_at       timestamptz,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (charger_id, connector_id)
);

CREATE TABLE customers (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL,
    -- hex SHA-256 of the bearer token; the token itself is never stored
    token_digest text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL
);

-- OCPP compares idTags case-insensitively: id_tag_key is the lower-case form and unique.
CREATE TABLE id_tags (
    id_tag_key  text    PRIMARY KEY,
    id_tag      text    NOT NULL,
    customer_id bigint  NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    position    integer NOT NULL
);
CREATE INDEX id_tags_by_customer ON id_tags (customer_id, position);

-- Slots are half-open [start_at, end_at). id is a 32-bit integer: it is OCPP's reservationId.
CREATE TABLE reservations (
    id           integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    charger_id   text        COLLATE "C" NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id integer     NOT NULL CHECK (connector_id >= 1),
    customer_id  bigint      NOT NULL REFERENCES customers (id),
    id_tag       text        NOT NULL,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN
                     ('BOOKED', 'CHARGING_STARTED', 'CHARGING_ENDED', 'CANCELLED', 'EXPIRED')),
    charger_ack  text        NOT NULL DEFAULT 'PENDING' CHECK (charger_ack IN
                     ('PENDING', 'ACCEPTED', 'OCCUPIED', 'FAULTED', 'REJECTED', 'UNAVAILABLE')),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    CONSTRAINT reservations_slot_not_empty CHECK (end_at > start_at),
    -- No double booking, enforced by the database across every node: two live reservations on
    -- one connector never overlap. The GiST index behind it also serves the overlap lookups.
    CONSTRAINT reservations_no_overlap EXCLUDE USING gist (
        charger_id WITH =,
        connector_id WITH =,
        tstzrange(start_at, end_at, '[)') WITH &&
    ) WHERE (status IN ('BOOKED', 'CHARGING_STARTED'))
);
CREATE INDEX reservations_by_customer ON reservations (customer_id, start_at);
CREATE INDEX reservations_by_start ON reservations (start_at);
CREATE INDEX reservations_by_charger ON reservations (charger_id, start_at);

-- The event log. seq is gap-free and in commit order: it is not a sequence (those leave gaps on
-- rollback and hand out numbers in start order, not commit order) but the next value of the
-- one-row event_counter, taken in the writing transaction; the row lock makes event-writing
-- commits take turns, so a reader never sees seq n+1 before n.
CREATE TABLE events (
    seq            bigint      PRIMARY KEY CHECK (seq >= 1),
    at             timestamptz NOT NULL,
    kind           text        NOT NULL,
    charger_id     text        COLLATE "C",
    customer_id    bigint,
    reservation_id integer,
    data           jsonb       NOT NULL
);

CREATE TABLE event_counter (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_seq bigint  NOT NULL
);
INSERT INTO event_counter (only_row, last_seq) VALUES (true, 0);
