-- Lanes retired for good (`storenode lane retire`), from their retained records
-- `{store}/retired/{writer}`: HQ no longer waits for them to move to a new epoch, leaves them
-- out of the store's lanes, and refuses their changes made after `since_ms` (HQ's clock when
-- it first stored the retirement). Unretiring deletes the row. Same text for SQLite and
-- PostgreSQL. Owned by `hq::state::retired`.
CREATE TABLE hq_retired (
    store    TEXT NOT NULL,
    writer   TEXT NOT NULL,
    record   TEXT NOT NULL,
    since_ms BIGINT NOT NULL,
    PRIMARY KEY (store, writer)
);
-- The store's live lanes: every reader that picks or counts lanes reads this, not
-- hq_writer_status.
CREATE VIEW hq_lane AS
    SELECT s.store, s.writer, s.online FROM hq_writer_status s
    WHERE NOT EXISTS (
        SELECT 1 FROM hq_retired r WHERE r.store = s.store AND r.writer = s.writer
    );
