-- The ledger's identity: a random id made once, when the ledger is created. A read model built
-- from this ledger's event log records it, and rebuilds when it finds another (the database was
-- replaced or recreated under it).
CREATE TABLE ledger_meta (
    id        integer PRIMARY KEY CHECK (id = 1),
    ledger_id text    NOT NULL
);
INSERT INTO ledger_meta (id, ledger_id)
    VALUES (1, md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));

-- The start rules ask whether an idTag (compared case-insensitively) is charging anywhere.
CREATE INDEX transactions_active_by_id_tag ON transactions (lower(id_tag)) WHERE status = 'ACTIVE';
