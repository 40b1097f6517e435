-- The ledger's identity: a random id made once, when the ledger is created. A read model built
-- from this ledger's event log records it, and rebuilds when it finds another (the ledger file
-- was replaced or deleted under it).
CREATE TABLE ledger_meta (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_id TEXT    NOT NULL
) STRICT;
INSERT INTO ledger_meta (id, ledger_id) VALUES (1, lower(hex(randomblob(16))));

-- The start rules ask whether an idTag (compared case-insensitively) is charging anywhere.
CREATE INDEX transactions_active_by_id_tag ON transactions (lower(id_tag)) WHERE status = 'ACTIVE';
