-- EPCIS event log: one row per store event that becomes an EPCIS 2.0 ObjectEvent. Written by
-- triggers in the same transaction as the business fact, so an event exists exactly when its
-- sale, receipt, count or tag read is durable; `seq` is the order HQ acknowledges by.
-- Tag events are pruned by age, so the log copies what the event needs from them.
CREATE TABLE epcis_event (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('receipt', 'count', 'sale', 'tag_read', 'exit_alert')),
    source_id INTEGER NOT NULL,
    at        TEXT NOT NULL,
    sku       TEXT,
    -- receipt: units received; count: units on hand after the count (what was counted)
    quantity  INTEGER,
    epc       TEXT,
    gtin14    TEXT,
    reader    TEXT,
    antenna   INTEGER,
    ref       TEXT,
    UNIQUE (kind, source_id)
) STRICT;
CREATE INDEX epcis_event_by_at ON epcis_event(at, seq);

-- What HQ has acknowledged (highest seq it stored), so publishing resumes from there.
CREATE TABLE epcis_ack (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL
) STRICT;

-- stock_level is updated after the movement row is inserted (store::ledger::record), so the
-- level read here is the one before this movement.
CREATE TRIGGER epcis_from_movement AFTER INSERT ON stock_movement
WHEN NEW.kind IN ('receipt', 'count')
BEGIN
    INSERT OR IGNORE INTO epcis_event (kind, source_id, at, sku, quantity, ref)
    VALUES (NEW.kind, NEW.id, NEW.at, NEW.sku,
            CASE NEW.kind WHEN 'receipt' THEN NEW.on_hand_delta
                 ELSE COALESCE((SELECT on_hand FROM stock_level WHERE sku = NEW.sku), 0)
                      + NEW.on_hand_delta END,
            NEW.ref_id);
END;

-- Lines are read when the event is built: they are written in the same transaction.
CREATE TRIGGER epcis_from_sale AFTER INSERT ON sale
BEGIN
    INSERT OR IGNORE INTO epcis_event (kind, source_id, at, ref)
    VALUES ('sale', NEW.id, NEW.at, NEW.sale_no);
END;

-- A tag entering a read point. Sold items are skipped: the customer carries them through
-- the store and out, which is not an inventory observation (devices::persist keeps them sold).
CREATE TRIGGER epcis_from_tag AFTER INSERT ON tag_event
WHEN NEW.kind = 'enter'
  AND (NEW.exit_alert = 1 OR (SELECT state FROM epc_item WHERE epc = NEW.epc) IS NOT 'sold')
BEGIN
    INSERT OR IGNORE INTO epcis_event (kind, source_id, at, sku, epc, gtin14, reader, antenna)
    VALUES (CASE NEW.exit_alert WHEN 1 THEN 'exit_alert' ELSE 'tag_read' END,
            NEW.id, NEW.at, NEW.sku, NEW.epc, NEW.gtin14, NEW.reader, NEW.antenna);
END;

-- Backfill what an existing database already holds, in time order. Counts get no quantity:
-- the level at the time is no longer known cheaply, and an event without it is still valid.
INSERT INTO epcis_event (kind, source_id, at, sku, quantity, epc, gtin14, reader, antenna, ref)
SELECT kind, source_id, at, sku, quantity, epc, gtin14, reader, antenna, ref FROM (
    SELECT kind, id AS source_id, at, sku,
           CASE kind WHEN 'receipt' THEN on_hand_delta END AS quantity,
           NULL AS epc, NULL AS gtin14, NULL AS reader, NULL AS antenna, ref_id AS ref
      FROM stock_movement WHERE kind IN ('receipt', 'count')
    UNION ALL
    SELECT 'sale', id, at, NULL, NULL, NULL, NULL, NULL, NULL, sale_no FROM sale
    UNION ALL
    SELECT CASE exit_alert WHEN 1 THEN 'exit_alert' ELSE 'tag_read' END, id, at, sku, NULL,
           epc, gtin14, reader, antenna, NULL
      FROM tag_event WHERE kind = 'enter'
) ORDER BY at, kind, source_id;
