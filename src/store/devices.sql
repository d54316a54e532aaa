-- Device events. Scans and tag events are kept so a terminal can catch up and a technician
-- can see the last reads; they are pruned by age, not by count.
CREATE TABLE scan_event (
    id         INTEGER PRIMARY KEY,
    device     TEXT NOT NULL,
    at         TEXT NOT NULL,
    symbology  TEXT,
    raw        TEXT NOT NULL,
    gtin14     TEXT,
    sku        TEXT,
    valid      INTEGER NOT NULL,
    error      TEXT
) STRICT;
CREATE INDEX scan_event_by_device ON scan_event(device, id);
CREATE INDEX scan_event_by_at ON scan_event(at);

-- Presence changes (not raw reads: those are de-duplicated in memory). One row per tag
-- entering or leaving a read point (reader + antenna).
CREATE TABLE tag_event (
    id         INTEGER PRIMARY KEY,
    reader     TEXT NOT NULL,
    antenna    INTEGER NOT NULL,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('enter', 'leave')),
    epc        TEXT NOT NULL,
    gtin14     TEXT,
    sku        TEXT,
    rssi       INTEGER,
    reads      INTEGER NOT NULL,
    exit_alert INTEGER NOT NULL DEFAULT 0 CHECK (exit_alert IN (0, 1))
) STRICT;
CREATE INDEX tag_event_by_epc ON tag_event(epc, id);
CREATE INDEX tag_event_by_reader ON tag_event(reader, id);
CREATE INDEX tag_event_by_at ON tag_event(at);

-- Item-level (serialised) inventory: every EPC the store has seen or sold.
--   in_store: seen by a reader and not sold;  sold: on a sale line (a return clears it);
--   left: passed an exit read point unsold (an exit alert was raised).
CREATE TABLE epc_item (
    epc          TEXT PRIMARY KEY,
    scheme       TEXT NOT NULL,
    gtin14       TEXT,
    serial       TEXT,
    sku          TEXT,
    state        TEXT NOT NULL CHECK (state IN ('in_store', 'sold', 'left')),
    first_seen   TEXT,
    last_seen    TEXT,
    last_reader  TEXT,
    sold_sale_id INTEGER,
    sold_at      TEXT
) STRICT;
CREATE INDEX epc_item_by_sku ON epc_item(sku, state);
