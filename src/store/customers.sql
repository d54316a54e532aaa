-- Customer personal data of orders (src/privacy), kept outside CRDT history so it can be
-- erased. Erasure deletes the row (PRAGMA secure_delete overwrites its bytes) and leaves a
-- tombstone without personal data.
CREATE TABLE order_customer (
    order_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    phone      TEXT NOT NULL,
    email      TEXT NOT NULL,
    address    TEXT,
    -- 'store': taken at this lane, published by it; 'hq': received from HQ.
    origin     TEXT NOT NULL CHECK (origin IN ('hq', 'store')),
    published  INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1)),
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE order_customer_erased (
    order_id  TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL,
    -- 0 until this lane's tombstone (its confirmation to HQ) is on the broker.
    published INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1))
) STRICT;
