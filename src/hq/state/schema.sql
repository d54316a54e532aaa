-- storenode hq: chain-wide stock per store and SKU, store sync state.
CREATE TABLE hq_stock (
    store    TEXT NOT NULL,
    sku      TEXT NOT NULL,
    on_hand  INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    PRIMARY KEY (store, sku)
) STRICT;

CREATE TABLE hq_store (
    store        TEXT PRIMARY KEY,
    -- Unix ms of the last change HQ applied from this store.
    last_sync_ms INTEGER,
    epoch        INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Retained online/offline status per writer (lane).
CREATE TABLE hq_writer_status (
    store  TEXT NOT NULL,
    writer TEXT NOT NULL,
    online INTEGER NOT NULL,
    PRIMARY KEY (store, writer)
) STRICT;
