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
    valid      INTEGER NOT NULL
) STRICT;
CREATE INDEX scan_event_by_device ON scan_event(device, id);
