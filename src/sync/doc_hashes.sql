-- The change hashes of HQ's catalog document, kept beside its save and log so the node
-- knows the document's heads and every change it holds without building it: a 50,000-item
-- catalog took about 200 MiB and 2–3 s to build at every start only for these. Written in
-- the transaction that logs the change (`sync::local::catalog`); filled from the document
-- once on a database from before this table.
CREATE TABLE sync_doc_hash (
    doc_key TEXT NOT NULL,
    epoch   INTEGER NOT NULL,
    hash    BLOB NOT NULL,
    -- 1: one of the document's heads (a change nothing else depends on).
    head    INTEGER NOT NULL CHECK (head IN (0, 1)),
    PRIMARY KEY (doc_key, epoch, hash)
) STRICT, WITHOUT ROWID;
