-- Orders closed at an epoch cut of a store's orders document and left out of the next
-- epoch (see `sync::epoch_orders`): their final facts and history, so that
-- `GET /v1/orders/{id}` and `GET /v1/orders?store=` still show them. Owned by
-- `hq::orders`.
CREATE TABLE hq_closed_order (
    doc_order_id TEXT PRIMARY KEY,   -- "hq:{id}" or "{writer}:{id}"
    store        TEXT NOT NULL,
    epoch        INTEGER NOT NULL,   -- the epoch the order was last in
    archived     TEXT NOT NULL       -- JSON: facts and every writer's events
) STRICT;
CREATE INDEX hq_closed_order_by_store ON hq_closed_order(store);
