-- How many bytes each document has logged since its last full save, and how large that save
-- was: a document is saved whole once its log has grown as large as its save
-- (`hq::db::docs::persist_change`), so what saves cost per logged change stays the same
-- however long the document's history. Counted as the changes are logged, because counting
-- the log on every change cost time that grew with it. Same text for SQLite and PostgreSQL.
ALTER TABLE hq_doc_version ADD COLUMN log_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hq_doc_version ADD COLUMN saved_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE hq_doc_version SET log_bytes = (
    SELECT coalesce(sum(length(bytes)), 0) FROM sync_change
    WHERE sync_change.doc_key = hq_doc_version.doc_key
);
UPDATE hq_doc_version SET saved_bytes = (
    SELECT coalesce(max(length(saved)), 0) FROM sync_doc
    WHERE sync_doc.doc_key = hq_doc_version.doc_key
);
