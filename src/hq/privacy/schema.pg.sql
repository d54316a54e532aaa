-- HQ on PostgreSQL: customer personal data of orders and erasure tombstones (see
-- `schema.sql`). An erased row is deleted; PostgreSQL reclaims its space at the next
-- (auto)vacuum, which docs/operations.md asks operators to keep on.
CREATE TABLE hq_order_customer (
    store      TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    phone      TEXT NOT NULL,
    email      TEXT NOT NULL,
    address    TEXT,
    email_key  TEXT NOT NULL,
    phone_key  TEXT NOT NULL,
    origin     TEXT NOT NULL CHECK (origin IN ('hq', 'store')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (store, order_id)
);
CREATE INDEX hq_order_customer_by_order ON hq_order_customer(order_id);
CREATE INDEX hq_order_customer_by_email ON hq_order_customer(email_key);
CREATE INDEX hq_order_customer_by_phone ON hq_order_customer(phone_key);

CREATE TABLE hq_customer_erasure (
    store        TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    erased_at    TEXT NOT NULL,
    requested_by TEXT NOT NULL CHECK (requested_by IN ('hq', 'store')),
    confirmed_at TEXT,
    confirmed_by TEXT,
    PRIMARY KEY (store, order_id)
);
CREATE INDEX hq_customer_erasure_by_order ON hq_customer_erasure(order_id);
