-- Sync state of one node (also used by `storenode hq` for its own database).
--
-- A document is rebuilt at start as `saved` + the changes logged since (own and received),
-- so a commit never re-saves the whole document: it appends its change here, in the same
-- transaction as the business write. The document is re-saved (and its log cleared) every
-- few hundred changes.
CREATE TABLE sync_doc (
    doc_key  TEXT NOT NULL,          -- "{store}/{kind}"
    epoch    INTEGER NOT NULL,
    saved    BLOB NOT NULL,
    saved_at TEXT NOT NULL,
    PRIMARY KEY (doc_key, epoch)
) STRICT;

CREATE TABLE sync_change (
    id      INTEGER PRIMARY KEY,
    doc_key TEXT NOT NULL,
    epoch   INTEGER NOT NULL,
    -- 1: `bytes` is a compressed bundle of several changes; 0: one encoded change.
    bundle  INTEGER NOT NULL DEFAULT 0 CHECK (bundle IN (0, 1)),
    bytes   BLOB NOT NULL
) STRICT;
CREATE INDEX sync_change_by_doc ON sync_change(doc_key, epoch, id);

-- This node's own changes that HQ's published heads do not include yet. The change bytes
-- live in the document (and its log); a row leaves when HQ's heads show HQ has it.
CREATE TABLE sync_outbox (
    id         INTEGER PRIMARY KEY,
    doc_key    TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX sync_outbox_by_doc ON sync_outbox(doc_key, epoch, id);

-- Small named integers: the stock_movement high-water mark, the current epoch.
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;
