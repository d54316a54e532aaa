//! HQ's documents in its database: the last full save plus the changes logged since, as the
//! store node keeps its own (`sync::persist`, whose format this follows). HQ saves a document
//! whole once its log is as large as its last save ([`save_due`]) rather than every 512
//! changes: a store's document at HQ holds the store's whole history, and a save costs time
//! in proportion to it. Kept apart from the node's code because it runs on either backend
//! and HQ has no outbox.

use crate::crdt::doc::{DocError, DocId, DocKind, SyncDoc, WriterId, touched_paths};
use crate::sync::persist::doc_key;

use super::{Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum DocStoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("stored document {key} epoch {epoch} cannot be rebuilt: {source}")]
    Rebuild {
        key: String,
        epoch: u32,
        source: DocError,
    },
}

struct LogEntry {
    bundle: bool,
    bytes: Vec<u8>,
}

/// Rebuilds a document from its save and log; `None` when nothing was ever stored.
pub fn load_doc(
    db: &Db,
    id: &DocId,
    epoch: u32,
    writer: WriterId,
) -> Result<Option<SyncDoc>, DocStoreError> {
    let key = doc_key(id);
    let rebuild = |source| DocStoreError::Rebuild {
        key: key.clone(),
        epoch,
        source,
    };
    let saved: Option<Vec<u8>> = db.query_opt(
        "SELECT saved FROM sync_doc WHERE doc_key = ?1 AND epoch = ?2",
        &[&key, &epoch],
        |r| r.get(0),
    )?;
    let log = db.query(
        "SELECT bundle, bytes FROM sync_change WHERE doc_key = ?1 AND epoch = ?2 ORDER BY id",
        &[&key, &epoch],
        |r| {
            Ok(LogEntry {
                bundle: r.get(0)?,
                bytes: r.get(1)?,
            })
        },
    )?;
    let mut doc = match saved {
        Some(bytes) => SyncDoc::load(&bytes, writer).map_err(rebuild)?,
        None if log.is_empty() => return Ok(None),
        None => SyncDoc::genesis(id, epoch, writer).map_err(rebuild)?,
    };
    replay(&mut doc, log).map_err(rebuild)?;
    Ok(Some(doc))
}

/// The stored document, or the genesis document when nothing is stored yet.
pub fn load_or_genesis(
    db: &Db,
    id: &DocId,
    epoch: u32,
    writer: WriterId,
) -> Result<SyncDoc, DocStoreError> {
    match load_doc(db, id, epoch, writer.clone())? {
        Some(doc) => Ok(doc),
        None => SyncDoc::genesis(id, epoch, writer).map_err(|source| DocStoreError::Rebuild {
            key: doc_key(id),
            epoch,
            source,
        }),
    }
}

fn replay(doc: &mut SyncDoc, log: Vec<LogEntry>) -> Result<(), DocError> {
    // Consecutive single changes go in as one batch (one dependency resolution pass).
    let mut singles: Vec<Vec<u8>> = Vec::new();
    for entry in log {
        if entry.bundle {
            doc.apply_changes(&std::mem::take(&mut singles))?;
            doc.apply_bundle(&entry.bytes)?;
        } else {
            singles.push(entry.bytes);
        }
    }
    doc.apply_changes(&singles)?;
    Ok(())
}

/// The log grows to at least this many bytes before a document is saved whole (a few
/// hundred small changes), so small documents are not saved at every change.
pub const MIN_LOG_BYTES_BEFORE_SAVE: i64 = 64 * 1024;

/// Whether a document whose log holds `log_bytes` since a save of `saved_bytes` is saved
/// whole now: once the log is as large as the save. A save costs time in proportion to the
/// document, so saving after a fixed number of changes made the cost per change grow with
/// the history; after as many logged bytes as the save's, it stays the same. A load then
/// reads the save and at most as much again of log.
pub fn save_due(log_bytes: i64, saved_bytes: i64) -> bool {
    log_bytes >= saved_bytes.max(MIN_LOG_BYTES_BEFORE_SAVE)
}

/// What a write did to a document's log, for [`bump_version`].
enum LogWrite {
    /// One entry of this many bytes logged.
    Logged(i64),
    /// Saved whole in this many bytes, the log cleared.
    Saved(i64),
}

/// A document's log size after a write: bytes logged since its save, and the save's size.
struct LogSize {
    log_bytes: i64,
    saved_bytes: i64,
}

/// Moves `doc` to its next version (every write of it does, in its transaction) and records
/// its heads after the write, so that each HQ instance can tell whether its copy in memory
/// is still the stored one, and catch it up from the log with a check that it got it all.
/// Counts the bytes logged since the last save in the same row (see [`save_due`]).
fn bump_version(
    db: &Db,
    doc: &SyncDoc,
    change_id: Option<i64>,
    write: LogWrite,
) -> Result<LogSize, DbError> {
    let key = doc_key(doc.id());
    let heads = heads_bytes(&doc.heads());
    // Two statements rather than one with a NULL parameter: PostgreSQL would have to guess
    // that parameter's type.
    let (sql, bytes) = match write {
        LogWrite::Logged(bytes) => (
            "INSERT INTO hq_doc_version (doc_key, version, heads, log_bytes, saved_bytes)
                 VALUES (?1, 1, ?2, ?3, 0)
             ON CONFLICT(doc_key) DO UPDATE SET version = hq_doc_version.version + 1,
                 heads = excluded.heads,
                 log_bytes = hq_doc_version.log_bytes + excluded.log_bytes
             RETURNING version, log_bytes, saved_bytes",
            bytes,
        ),
        LogWrite::Saved(bytes) => (
            "INSERT INTO hq_doc_version (doc_key, version, heads, log_bytes, saved_bytes)
                 VALUES (?1, 1, ?2, 0, ?3)
             ON CONFLICT(doc_key) DO UPDATE SET version = hq_doc_version.version + 1,
                 heads = excluded.heads, log_bytes = 0, saved_bytes = excluded.saved_bytes
             RETURNING version, log_bytes, saved_bytes",
            bytes,
        ),
    };
    let (version, size) = db.query_one(sql, &[&key, &heads, &bytes], |r| {
        Ok((
            r.get::<i64>(0)?,
            LogSize {
                log_bytes: r.get(1)?,
                saved_bytes: r.get(2)?,
            },
        ))
    })?;
    db.record_touched(&key, version, change_id);
    Ok(size)
}

/// Heads as stored: the hashes one after the other, in automerge's (sorted) order.
pub fn heads_bytes(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// A document's stored version and its heads after that write ([`heads_bytes`]).
pub type StoredVersion = (i64, Option<Vec<u8>>);

/// The stored version of one document and its heads after that write.
pub fn version_and_heads(db: &Db, key: &str) -> Result<Option<StoredVersion>, DbError> {
    db.query_opt(
        "SELECT version, heads FROM hq_doc_version WHERE doc_key = ?1",
        &[&key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// The changes logged for `id` in `epoch` after change `after` (row id), oldest first, and
/// the last row id.
pub fn changes_after(
    db: &Db,
    id: &DocId,
    epoch: u32,
    after: i64,
) -> Result<(Vec<Logged>, Option<i64>), DbError> {
    let rows: Vec<(i64, bool, Vec<u8>)> = db.query(
        "SELECT id, bundle, bytes FROM sync_change
         WHERE doc_key = ?1 AND epoch = ?2 AND id > ?3 ORDER BY id",
        &[&doc_key(id), &epoch, &after],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let last = rows.last().map(|(id, _, _)| *id);
    Ok((
        rows.into_iter()
            .map(|(_, bundle, bytes)| (bundle, bytes))
            .collect(),
        last,
    ))
}

/// The last logged change's row id of `id` in `epoch` (0 when none).
pub fn last_change_id(db: &Db, id: &DocId, epoch: u32) -> Result<i64, DbError> {
    Ok(db
        .query_one(
            "SELECT max(id) FROM sync_change WHERE doc_key = ?1 AND epoch = ?2",
            &[&doc_key(id), &epoch],
            |r| r.get::<Option<i64>>(0),
        )?
        .unwrap_or(0))
}

/// A logged entry: whether it is a bundle, and its bytes.
pub type Logged = (bool, Vec<u8>);

/// Applies logged entries (see [`changes_after`]) to `doc`.
pub fn apply_logged(doc: &mut SyncDoc, entries: Vec<Logged>) -> Result<(), DocError> {
    replay(
        doc,
        entries
            .into_iter()
            .map(|(bundle, bytes)| LogEntry { bundle, bytes })
            .collect(),
    )
}

/// A document's key and its heads as [`heads_bytes`] stored them.
pub type StoredHeads = (String, Option<Vec<u8>>);

/// Every document's key and its heads after its last write (`None` for a row from before
/// heads were recorded: load the document for them).
pub fn stored_heads(db: &Db) -> Result<Vec<StoredHeads>, DbError> {
    db.query("SELECT doc_key, heads FROM hq_doc_version", &[], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// Heads as [`heads_bytes`] stored them; `None` when the bytes are not whole hashes.
pub fn heads_from_bytes(bytes: &[u8]) -> Option<Vec<automerge::ChangeHash>> {
    let hashes = bytes.chunks_exact(32);
    if !hashes.remainder().is_empty() {
        return None;
    }
    hashes
        .map(|h| <[u8; 32]>::try_from(h).ok().map(automerge::ChangeHash))
        .collect()
}

/// The stored version of one document (0: never written).
pub fn version(db: &Db, key: &str) -> Result<i64, DbError> {
    Ok(db
        .query_opt(
            "SELECT version FROM hq_doc_version WHERE doc_key = ?1",
            &[&key],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

/// Saves the whole document and clears its log. Its readers redo everything of it
/// ([`super::Written::Whole`]): a save writes a new epoch's document.
pub fn save_doc(db: &Db, doc: &SyncDoc, now: &str) -> Result<(), DbError> {
    db.record_written(&doc_key(doc.id()), None);
    save_whole(db, doc, now)
}

/// [`save_doc`] without recording where it wrote (a save of what was just logged).
fn save_whole(db: &Db, doc: &SyncDoc, now: &str) -> Result<(), DbError> {
    let key = doc_key(doc.id());
    let saved = doc.save();
    bump_version(db, doc, None, LogWrite::Saved(byte_len(&saved)))?;
    let epoch = doc.epoch();
    db.execute(
        "INSERT INTO sync_doc (doc_key, epoch, saved, saved_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(doc_key, epoch) DO UPDATE SET saved = excluded.saved, saved_at = excluded.saved_at",
        &[&key, &epoch, &saved, &now],
    )?;
    db.execute(
        "DELETE FROM sync_change WHERE doc_key = ?1 AND epoch = ?2",
        &[&key, &epoch],
    )?;
    Ok(())
}

fn byte_len(bytes: &[u8]) -> i64 {
    i64::try_from(bytes.len()).unwrap_or(i64::MAX)
}

/// Logs a change (or a bundle of them) of `doc`, which has applied it, and saves the
/// document whole once the log is as large as its last save ([`save_due`]). Of an orders
/// document, records where the change wrote ([`Db::record_written`]).
pub fn persist_change(
    db: &Db,
    doc: &SyncDoc,
    bytes: &[u8],
    bundle: bool,
    now: &str,
) -> Result<(), DbError> {
    let key = doc_key(doc.id());
    let epoch = doc.epoch();
    let change_id: i64 = db.query_one(
        "INSERT INTO sync_change (doc_key, epoch, bundle, bytes) VALUES (?1, ?2, ?3, ?4)
         RETURNING id",
        &[&key, &epoch, &bundle, &bytes],
        |r| r.get(0),
    )?;
    let size = bump_version(db, doc, Some(change_id), LogWrite::Logged(byte_len(bytes)))?;
    if doc.id().kind == DocKind::Orders {
        db.record_written(&key, touched_paths(doc, bytes, bundle));
    }
    if save_due(size.log_bytes, size.saved_bytes) {
        save_whole(db, doc, now)?;
    }
    Ok(())
}

/// Deletes the saves and logs of `id`'s epochs before `epoch`; returns the rows dropped.
pub fn drop_epochs_before(db: &Db, id: &DocId, epoch: u32) -> Result<u64, DbError> {
    let key = doc_key(id);
    Ok(db.execute(
        "DELETE FROM sync_doc WHERE doc_key = ?1 AND epoch < ?2",
        &[&key, &epoch],
    )? + db.execute(
        "DELETE FROM sync_change WHERE doc_key = ?1 AND epoch < ?2",
        &[&key, &epoch],
    )?)
}
