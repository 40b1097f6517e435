-- A deleted customer's past reservations stay in the ledger (history, reports, transactions that
-- name them), so a reservation no longer requires its customer to exist: it keeps the number of
-- a customer that is gone. Identity ids are never reused, so that number never names anyone else.
ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_customer_id_fkey;
