-- HQ on PostgreSQL: orders closed at an orders epoch cut (see `schema.sql`).
CREATE TABLE hq_closed_order (
    doc_order_id TEXT PRIMARY KEY,
    store        TEXT NOT NULL,
    epoch        BIGINT NOT NULL,
    archived     TEXT NOT NULL
);
CREATE INDEX hq_closed_order_by_store ON hq_closed_order(store);
