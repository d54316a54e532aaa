-- HQ's copy of every store writer's EPCIS events (src/hq/epcis.rs). Stored once per eventID,
-- so re-sent batches are harmless.
CREATE TABLE hq_epcis_event (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    store       TEXT NOT NULL,
    writer      TEXT NOT NULL,
    -- UTC, milliseconds, 'Z' (as the stores write it), so text order is time order.
    event_time  TEXT NOT NULL,
    event       TEXT NOT NULL,
    received_at TEXT NOT NULL
) STRICT;
CREATE INDEX hq_epcis_event_by_store ON hq_epcis_event(store, id);

-- Per writer: every log sequence up to `seq` is stored (what HQ acknowledges).
CREATE TABLE hq_epcis_mark (
    store  TEXT NOT NULL,
    writer TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (store, writer)
) STRICT;
