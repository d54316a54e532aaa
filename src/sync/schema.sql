-- Sync state: each CRDT document's saved form, and the durable outbox of changes not yet
-- acknowledged by HQ's published heads.
CREATE TABLE sync_doc (
    doc_id   TEXT PRIMARY KEY,
    epoch    INTEGER NOT NULL,
    saved    BLOB NOT NULL,
    saved_at TEXT NOT NULL
) STRICT;

CREATE TABLE sync_outbox (
    id        INTEGER PRIMARY KEY,
    doc_id    TEXT NOT NULL,
    epoch     INTEGER NOT NULL,
    hash      BLOB NOT NULL,
    change    BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX sync_outbox_by_doc ON sync_outbox(doc_id, id);
