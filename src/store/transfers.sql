-- Store-to-store transfers (owned by `store::transfers`). One row per transfer this node
-- dispatched (outbound) or receives (inbound); the id is chain-wide: "{dispatching writer}:{local id}".
CREATE TABLE transfer (
    id         TEXT PRIMARY KEY,
    local_id   TEXT NOT NULL,
    direction  TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    from_store TEXT NOT NULL,
    to_store   TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('in_transit', 'received', 'cancelled')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX transfer_by_status ON transfer(direction, status, created_at);
CREATE INDEX transfer_by_local_id ON transfer(local_id);

-- `booked`: the on-hand change this node has put into the ledger for the line so far; the
-- status's effect minus `booked` is what is still to book (units move exactly once).
CREATE TABLE transfer_line (
    transfer_id TEXT NOT NULL REFERENCES transfer(id),
    sku         TEXT NOT NULL,
    dispatched  INTEGER NOT NULL CHECK (dispatched >= 0),
    received    INTEGER CHECK (received >= 0),
    booked      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (transfer_id, sku)
) STRICT;

-- The status history. `shared` = 0: an own event the sync hook has not yet written into the
-- orders document (it does so in the same commit when sync runs).
CREATE TABLE transfer_event (
    id          INTEGER PRIMARY KEY,
    transfer_id TEXT NOT NULL REFERENCES transfer(id),
    status      TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    shared      INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1))
) STRICT;
CREATE INDEX transfer_event_by_transfer ON transfer_event(transfer_id, id);
CREATE INDEX transfer_event_unshared ON transfer_event(id) WHERE shared = 0;

-- The orders-document heads the transfers were last reconciled at (skip when unchanged).
CREATE TABLE transfer_doc_mark (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    heads TEXT NOT NULL
) STRICT;
