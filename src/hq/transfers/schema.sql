-- Store-to-store transfers as HQ sees them (owned by `hq::transfers`), refreshed from
-- the stores' orders documents whenever they change. `synced` = 1 once both stores'
-- documents show the same status (nothing left to relay).
CREATE TABLE hq_transfer (
    id            TEXT PRIMARY KEY,
    from_store    TEXT NOT NULL,
    to_store      TEXT NOT NULL,
    receiver      TEXT,
    status        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    synced        INTEGER NOT NULL DEFAULT 0 CHECK (synced IN (0, 1))
) STRICT;
CREATE INDEX hq_transfer_from ON hq_transfer(from_store, status);
CREATE INDEX hq_transfer_to ON hq_transfer(to_store, status);
CREATE INDEX hq_transfer_pending ON hq_transfer(to_store) WHERE synced = 0;

CREATE TABLE hq_transfer_line (
    transfer_id TEXT NOT NULL REFERENCES hq_transfer(id),
    sku         TEXT NOT NULL,
    dispatched  INTEGER NOT NULL,
    received    INTEGER,
    PRIMARY KEY (transfer_id, sku)
) STRICT;
