-- 4: orders shared through the store's orders document (store-taken orders travel to HQ,
-- any lane can collect, ship-from-store). Owned by `store::orders`.
-- delivery: 'collect' (click-and-collect) or 'ship' (ship-from-store).
ALTER TABLE cc_order ADD COLUMN delivery TEXT NOT NULL DEFAULT 'collect'
    CHECK (delivery IN ('collect', 'ship'));
-- The writer (lane) that holds the order's units; NULL: this node.
ALTER TABLE cc_order ADD COLUMN fulfilment TEXT;
-- The order's id in the orders document (`hq:{id}` or `{writer}:{id}`); NULL: not shared yet.
ALTER TABLE cc_order ADD COLUMN doc_id TEXT;
CREATE UNIQUE INDEX cc_order_by_doc_id ON cc_order(doc_id) WHERE doc_id IS NOT NULL;
