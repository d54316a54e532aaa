-- Fewer B-trees touched per sale (SD-card wear, issue 18). Each table or index a commit
-- changes costs at least one WAL frame (a whole page), and each of them is a page the next
-- checkpoint writes back. A sale touched 22 of them; this takes 7 off its path. Nothing stored
-- is dropped: the rebuilt tables take every row, column for column, in the same order (tests
-- and older tools insert by position). Runs with foreign keys off (schema::migrate) and is
-- checked with `PRAGMA foreign_key_check` before it commits.

-- Sale lines and payments: a rowid table with a (sale_id, n) primary key is two B-trees (the
-- rows, and the key's index), both written by every sale. WITHOUT ROWID, the key is the table:
-- one B-tree, appended at its end because sale ids grow. Owned by `store::sales`.
CREATE TABLE sale_line_v2 (
    sale_id          INTEGER NOT NULL REFERENCES sale(id),
    line_no          INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    gtin14           TEXT,
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit             TEXT NOT NULL CHECK (unit IN ('piece', 'gram')),
    unit_price_minor INTEGER NOT NULL,
    amount_minor     INTEGER NOT NULL,
    tax_class        TEXT NOT NULL,
    tax_rate_bp      INTEGER NOT NULL,
    tax_minor        INTEGER NOT NULL,
    epc              TEXT,
    PRIMARY KEY (sale_id, line_no)
) STRICT, WITHOUT ROWID;
INSERT INTO sale_line_v2
    SELECT sale_id, line_no, sku, gtin14, name, quantity, unit, unit_price_minor,
           amount_minor, tax_class, tax_rate_bp, tax_minor, epc
      FROM sale_line;
DROP TABLE sale_line;
ALTER TABLE sale_line_v2 RENAME TO sale_line;

CREATE TABLE payment_v2 (
    sale_id      INTEGER NOT NULL REFERENCES sale(id),
    seq          INTEGER NOT NULL,
    method       TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    reference    TEXT,
    PRIMARY KEY (sale_id, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO payment_v2
    SELECT sale_id, seq, method, amount_minor, reference FROM payment;
DROP TABLE payment;
ALTER TABLE payment_v2 RENAME TO payment;

-- Sales: the UNIQUE index on `sale_no` was one more B-tree per sale. A sale number is
-- `{writer}-{id:06}` of its own row id (store::sales::record_sale), so a sale is found by its
-- number through the row id (`sale_id_of!`, checked against the stored number): no index
-- needed, and the numbers stay unique because the ids are. The trigger on `sale` is recreated
-- below with the EPCIS ones. Owned by `store::sales`.
DROP TRIGGER epcis_from_sale;
CREATE TABLE sale_v2 (
    id           INTEGER PRIMARY KEY,
    sale_no      TEXT NOT NULL,
    terminal     TEXT NOT NULL,
    at           TEXT NOT NULL,
    currency     TEXT NOT NULL,
    total_minor  INTEGER NOT NULL,
    tax_minor    INTEGER NOT NULL,
    paid_minor   INTEGER NOT NULL,
    change_minor INTEGER NOT NULL
) STRICT;
INSERT INTO sale_v2
    SELECT id, sale_no, terminal, at, currency, total_minor, tax_minor, paid_minor, change_minor
      FROM sale;
DROP TABLE sale;
ALTER TABLE sale_v2 RENAME TO sale;

-- The EPCIS log: AUTOINCREMENT rewrote the `sqlite_sequence` row at every event, and the
-- UNIQUE (kind, source_id) index was a second B-tree per event that no query reads. Each
-- source row fires its trigger once, so (kind, source_id) stays unique by construction; and
-- rows are never deleted, so `seq` (max + 1) never reuses a number HQ has acknowledged. A
-- future pruning of this log must keep its highest row. Owned by `epcis`.
DROP TRIGGER epcis_from_movement;
DROP TRIGGER epcis_from_tag;
CREATE TABLE epcis_event_v2 (
    seq       INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('receipt', 'count', 'sale', 'tag_read', 'exit_alert')),
    source_id INTEGER NOT NULL,
    at        TEXT NOT NULL,
    sku       TEXT,
    quantity  INTEGER,
    epc       TEXT,
    gtin14    TEXT,
    reader    TEXT,
    antenna   INTEGER,
    ref       TEXT
) STRICT;
INSERT INTO epcis_event_v2
    SELECT seq, kind, source_id, at, sku, quantity, epc, gtin14, reader, antenna, ref
      FROM epcis_event;
DROP TABLE epcis_event;
ALTER TABLE epcis_event_v2 RENAME TO epcis_event;
CREATE INDEX epcis_event_by_at ON epcis_event(at, seq);

-- The same triggers as in epcis/schema.sql (see there for why each reads what it reads).
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

CREATE TRIGGER epcis_from_sale AFTER INSERT ON sale
BEGIN
    INSERT OR IGNORE INTO epcis_event (kind, source_id, at, ref)
    VALUES ('sale', NEW.id, NEW.at, NEW.sale_no);
END;

CREATE TRIGGER epcis_from_tag AFTER INSERT ON tag_event
WHEN NEW.kind = 'enter'
  AND (NEW.exit_alert = 1 OR (SELECT state FROM epc_item WHERE epc = NEW.epc) IS NOT 'sold')
BEGIN
    INSERT OR IGNORE INTO epcis_event (kind, source_id, at, sku, epc, gtin14, reader, antenna)
    VALUES (CASE NEW.exit_alert WHEN 1 THEN 'exit_alert' ELSE 'tag_read' END,
            NEW.id, NEW.at, NEW.sku, NEW.epc, NEW.gtin14, NEW.reader, NEW.antenna);
END;

-- The sync change log's and outbox's (doc_key, epoch, id) indexes: two more B-trees per sale.
-- A node holds a handful of documents; its change log is cleared at every save (at most
-- persist::SAVE_EVERY_CHANGES = 512 entries a document), and its outbox holds only what HQ
-- has not acknowledged yet, so the reads by document scan a short table in id order instead.
-- HQ's database keeps both indexes (hq::db has its own migrations): it holds every store's
-- documents. Owned by `sync::persist`.
DROP INDEX IF EXISTS sync_change_by_doc;
DROP INDEX IF EXISTS sync_outbox_by_doc;
