-- HQ: customer personal data of orders (src/hq/privacy/), outside CRDT history. Erasure
-- deletes the row (secure_delete) and keeps a tombstone without personal data, with the
-- store's confirmation.
CREATE TABLE hq_order_customer (
    store      TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    phone      TEXT NOT NULL,
    email      TEXT NOT NULL,
    address    TEXT,
    -- What erasure requests match: lower-case e-mail, phone digits.
    email_key  TEXT NOT NULL,
    phone_key  TEXT NOT NULL,
    origin     TEXT NOT NULL CHECK (origin IN ('hq', 'store')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (store, order_id)
) STRICT;
CREATE INDEX hq_order_customer_by_order ON hq_order_customer(order_id);
CREATE INDEX hq_order_customer_by_email ON hq_order_customer(email_key);
CREATE INDEX hq_order_customer_by_phone ON hq_order_customer(phone_key);

CREATE TABLE hq_customer_erasure (
    store        TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    erased_at    TEXT NOT NULL,
    requested_by TEXT NOT NULL CHECK (requested_by IN ('hq', 'store')),
    -- When a lane of the store published its tombstone, and which lane.
    confirmed_at TEXT,
    confirmed_by TEXT,
    PRIMARY KEY (store, order_id)
) STRICT;
CREATE INDEX hq_customer_erasure_by_order ON hq_customer_erasure(order_id);
