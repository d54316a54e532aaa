-- storenode hq on PostgreSQL: documents (saved state plus the changes logged since) and the
-- chain-wide stock. The same tables as the SQLite schema (`schema.sql` and
-- `sync/schema.sql`), with PostgreSQL's types.
CREATE TABLE sync_doc (
    doc_key  TEXT NOT NULL,
    epoch    BIGINT NOT NULL,
    saved    BYTEA NOT NULL,
    saved_at TEXT NOT NULL,
    PRIMARY KEY (doc_key, epoch)
);

CREATE TABLE sync_change (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_key TEXT NOT NULL,
    epoch   BIGINT NOT NULL,
    bundle  BIGINT NOT NULL DEFAULT 0 CHECK (bundle IN (0, 1)),
    bytes   BYTEA NOT NULL
);
CREATE INDEX sync_change_by_doc ON sync_change(doc_key, epoch, id);

CREATE TABLE hq_stock (
    store    TEXT NOT NULL,
    sku      TEXT NOT NULL,
    on_hand  BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    PRIMARY KEY (store, sku)
);

CREATE TABLE hq_store (
    store        TEXT PRIMARY KEY,
    last_sync_ms BIGINT,
    epoch        BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE hq_writer_status (
    store  TEXT NOT NULL,
    writer TEXT NOT NULL,
    online BIGINT NOT NULL,
    PRIMARY KEY (store, writer)
);
