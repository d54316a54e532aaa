-- HQ on PostgreSQL: store-to-store transfers (see `schema.sql`).
CREATE TABLE hq_transfer (
    id            TEXT PRIMARY KEY,
    from_store    TEXT NOT NULL,
    to_store      TEXT NOT NULL,
    receiver      TEXT,
    status        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    synced        BIGINT NOT NULL DEFAULT 0 CHECK (synced IN (0, 1))
);
CREATE INDEX hq_transfer_from ON hq_transfer(from_store, status);
CREATE INDEX hq_transfer_to ON hq_transfer(to_store, status);
CREATE INDEX hq_transfer_pending ON hq_transfer(to_store) WHERE synced = 0;

CREATE TABLE hq_transfer_line (
    transfer_id TEXT NOT NULL REFERENCES hq_transfer(id),
    sku         TEXT NOT NULL,
    dispatched  BIGINT NOT NULL,
    received    BIGINT,
    PRIMARY KEY (transfer_id, sku)
);
