-- Each document's version: moved on by every write of the document, in its transaction, so
-- that each HQ instance sharing this database can tell whether its copy in memory is still
-- the stored one (`hq::db::docs::bump_version`), and the document's heads after that write,
-- so that an instance can catch its copy up from the logged changes and know it got them
-- all. Same text for SQLite and PostgreSQL.
CREATE TABLE hq_doc_version (
    doc_key TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    heads   BYTEA
);
INSERT INTO hq_doc_version (doc_key, version)
    SELECT DISTINCT doc_key, 1 FROM sync_doc
    UNION SELECT DISTINCT doc_key, 1 FROM sync_change;
