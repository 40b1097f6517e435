-- Whole-charger reservations: connector 0 stands for "any connector of the charger", and its slot
-- overlaps every connector's slot of that charger (and theirs it). The exclusion constraint says
-- so itself, across every node: a connector is the range [c, c+1), connector 0 the range of all
-- connectors [0, ∞), and two live reservations of one charger whose connector ranges and slots
-- both overlap are refused.
ALTER TABLE reservations DROP CONSTRAINT reservations_connector_id_check;
ALTER TABLE reservations ADD CONSTRAINT reservations_connector_id_check CHECK (connector_id >= 0);

ALTER TABLE reservations DROP CONSTRAINT reservations_no_overlap;
ALTER TABLE reservations ADD CONSTRAINT reservations_no_overlap EXCLUDE USING gist (
    charger_id WITH =,
    (CASE WHEN connector_id = 0 THEN int4range(0, NULL)
          ELSE int4range(connector_id, connector_id + 1) END) WITH &&,
    tstzrange(start_at, end_at, '[)') WITH &&
) WHERE (status IN ('BOOKED', 'CHARGING_STARTED'));
