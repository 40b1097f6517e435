-- Unknown chargers (api.md `unknown_chargers`): a charger is `accepted` (every charger an
-- operator registered, and so every row before this migration), `pending` (it connected unknown
-- and booted; it waits for the operator) or `rejected` (the operator refused it). Only accepted
-- chargers are booked or sent commands; the others' BootNotification is answered with their
-- state. The same column as migrations/sqlite/0005_unknown_chargers.sql.
ALTER TABLE chargers ADD COLUMN state text NOT NULL DEFAULT 'accepted'
    CHECK (state IN ('accepted', 'pending', 'rejected'));

-- `GET /chargers?state=pending` pages through one state in id order.
CREATE INDEX chargers_by_state ON chargers (state, id);
