-- The last availability the server gave each connector through ChangeAvailability and the
-- charger accepted (or scheduled): connector 0 is the charger as a whole. A connector is out of
-- service while its row or its charger's row 0 says Inoperative; no row means Operative.
CREATE TABLE connector_availability (
    charger_id   TEXT    NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id INTEGER NOT NULL CHECK (connector_id >= 0),
    availability TEXT    NOT NULL CHECK (availability IN ('Operative', 'Inoperative')),
    scheduled    INTEGER NOT NULL CHECK (scheduled IN (0, 1)),
    since        INTEGER NOT NULL,
    PRIMARY KEY (charger_id, connector_id)
) STRICT;
