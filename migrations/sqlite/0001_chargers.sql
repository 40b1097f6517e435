-- Chargers registered by operators, with the last state they reported (written behind the
-- live sessions, so a restart still shows what a charger last said). Times are Unix
-- milliseconds: integers compare numerically and cost no parsing.
CREATE TABLE chargers (
    id                       TEXT    PRIMARY KEY NOT NULL,
    name                     TEXT,
    connectors               INTEGER NOT NULL CHECK (connectors BETWEEN 1 AND 100),
    password_hash            TEXT,
    vendor                   TEXT,
    model                    TEXT,
    serial_number            TEXT,
    charge_box_serial_number TEXT,
    firmware_version         TEXT,
    iccid                    TEXT,
    imsi                     TEXT,
    meter_type               TEXT,
    meter_serial_number      TEXT,
    last_boot_at             INTEGER,
    last_seen_at             INTEGER,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
) STRICT;

-- The last StatusNotification per connector; connector 0 is the charger itself.
CREATE TABLE connector_status (
    charger_id        TEXT    NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id      INTEGER NOT NULL CHECK (connector_id >= 0),
    status            TEXT    NOT NULL,
    error_code        TEXT    NOT NULL,
    info              TEXT,
    vendor_error_code TEXT,
    reported_at       INTEGER,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (charger_id, connector_id)
) STRICT;
