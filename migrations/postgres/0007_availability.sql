-- The last availability the server gave each connector through ChangeAvailability and the
-- charger accepted (or scheduled): connector 0 is the charger as a whole. A connector is out of
-- service while its row or its charger's row 0 says Inoperative; no row means Operative.
CREATE TABLE connector_availability (
    charger_id   text        COLLATE "C" NOT NULL REFERENCES chargers (id) ON DELETE CASCADE,
    connector_id integer     NOT NULL CHECK (connector_id >= 0),
    availability text        NOT NULL CHECK (availability IN ('Operative', 'Inoperative')),
    scheduled    boolean     NOT NULL,
    since        timestamptz NOT NULL,
    PRIMARY KEY (charger_id, connector_id)
);
