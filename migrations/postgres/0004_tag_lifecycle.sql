-- idTags as records of their own: an operator may block one, give it an expiry or a parent (a
-- fleet or group card). Authorize, StartTransaction and StopTransaction answer accordingly.
ALTER TABLE id_tags ADD COLUMN status text NOT NULL DEFAULT 'ACCEPTED'
    CHECK (status IN ('ACCEPTED', 'BLOCKED'));
ALTER TABLE id_tags ADD COLUMN expires_at timestamptz;
ALTER TABLE id_tags ADD COLUMN parent_id_tag text;
