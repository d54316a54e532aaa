-- Which store's orders document holds each order (`hq::orders::index`): an order looked up
-- by id loads that one document instead of searching every store's. Kept where orders are
-- placed at HQ and where stores' orders changes are applied; `hq_order_index_pending` asks
-- the next start to fill it from the documents stored before it existed. Same text for
-- SQLite and PostgreSQL. Owned by `hq::orders`.
CREATE TABLE hq_order_store (
    doc_order_id TEXT PRIMARY KEY,   -- "hq:{id}" or "{writer}:{id}"
    store        TEXT NOT NULL
);
CREATE TABLE hq_order_index_pending (pending BIGINT NOT NULL);
INSERT INTO hq_order_index_pending (pending) VALUES (1);
