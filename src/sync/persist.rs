//! Durable form of the sync documents and the outbox in SQLite (tables in `schema.sql`).
//!
//! A document is stored as its last full save plus the log of changes since, so a business
//! commit only appends its own (small) change; [`save_doc`] compacts every
//! [`SAVE_EVERY_CHANGES`] logged entries. Everything here runs on a connection the caller
//! holds inside its transaction: the document, the outbox and the business data commit
//! together or not at all.

use automerge::ChangeHash;
use rusqlite::{Connection, OptionalExtension, params};

use crate::crdt::doc::{DocError, DocId, SyncDoc, WriterId};

/// Logged changes after which a document is saved whole again. A save costs about as much
/// as serialising the document; the log costs one replay per entry at start. Measured in
/// `examples/bench_sync.rs`.
pub const SAVE_EVERY_CHANGES: u64 = 512;

/// `sync_state` key of the highest `stock_movement.id` already turned into a change.
pub const KEY_MOVEMENT_MARK: &str = "stock_movement_mark";
/// `sync_state` key of the stock epoch this node writes in.
pub const KEY_EPOCH: &str = "epoch";

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("sync tables: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored sync document {key} epoch {epoch} cannot be rebuilt: {source}")]
    Rebuild {
        key: String,
        epoch: u32,
        source: DocError,
    },
    #[error("stored change hash is not 32 bytes")]
    BadHash,
}

/// `"{store}/{kind}"`: the row key of a document.
pub fn doc_key(id: &DocId) -> String {
    format!("{}/{}", id.store, id.kind.as_str())
}

/// Rebuilds a document from its save and log; `None` when nothing was ever stored.
pub fn load_doc(
    conn: &Connection,
    id: &DocId,
    epoch: u32,
    writer: WriterId,
) -> Result<Option<SyncDoc>, PersistError> {
    let key = doc_key(id);
    let rebuild = |source| PersistError::Rebuild {
        key: key.clone(),
        epoch,
        source,
    };
    let saved: Option<Vec<u8>> = conn
        .prepare_cached("SELECT saved FROM sync_doc WHERE doc_key = ?1 AND epoch = ?2")?
        .query_row(params![key, epoch], |row| row.get(0))
        .optional()?;
    let log = change_log(conn, &key, epoch)?;
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
    conn: &Connection,
    id: &DocId,
    epoch: u32,
    writer: WriterId,
) -> Result<SyncDoc, PersistError> {
    match load_doc(conn, id, epoch, writer.clone())? {
        Some(doc) => Ok(doc),
        None => SyncDoc::genesis(id, epoch, writer).map_err(|source| PersistError::Rebuild {
            key: doc_key(id),
            epoch,
            source,
        }),
    }
}

struct LogEntry {
    bundle: bool,
    bytes: Vec<u8>,
}

fn change_log(conn: &Connection, key: &str, epoch: u32) -> Result<Vec<LogEntry>, PersistError> {
    let mut stmt = conn.prepare_cached(
        "SELECT bundle, bytes FROM sync_change WHERE doc_key = ?1 AND epoch = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![key, epoch], |row| {
        Ok(LogEntry {
            bundle: row.get::<_, i64>(0)? != 0,
            bytes: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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

/// Logs a change (own or received) of `doc`; returns the number of entries now logged.
pub fn log_change(
    conn: &Connection,
    id: &DocId,
    epoch: u32,
    bytes: &[u8],
    bundle: bool,
) -> Result<u64, PersistError> {
    let key = doc_key(id);
    conn.prepare_cached(
        "INSERT INTO sync_change (doc_key, epoch, bundle, bytes) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![key, epoch, i64::from(bundle), bytes])?;
    let logged: i64 = conn
        .prepare_cached("SELECT count(*) FROM sync_change WHERE doc_key = ?1 AND epoch = ?2")?
        .query_row(params![key, epoch], |row| row.get(0))?;
    Ok(logged.unsigned_abs())
}

/// Saves the whole document and clears its log.
pub fn save_doc(conn: &Connection, doc: &SyncDoc, now: &str) -> Result<(), PersistError> {
    store_saved(conn, doc.id(), doc.epoch(), &doc.save(), now)
}

/// Stores `saved` (a document's save, made elsewhere) as the document and clears its log:
/// the save already holds every logged change.
pub fn store_saved(
    conn: &Connection,
    id: &DocId,
    epoch: u32,
    saved: &[u8],
    now: &str,
) -> Result<(), PersistError> {
    let key = doc_key(id);
    conn.prepare_cached(
        "INSERT INTO sync_doc (doc_key, epoch, saved, saved_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(doc_key, epoch) DO UPDATE SET saved = excluded.saved, saved_at = excluded.saved_at",
    )?
    .execute(params![key, epoch, saved, now])?;
    conn.prepare_cached("DELETE FROM sync_change WHERE doc_key = ?1 AND epoch = ?2")?
        .execute(params![key, epoch])?;
    Ok(())
}

/// Entries in a document's change log (how close it is to its next save).
pub fn logged_changes(conn: &Connection, id: &DocId, epoch: u32) -> Result<u64, PersistError> {
    let logged: i64 = conn
        .prepare_cached("SELECT count(*) FROM sync_change WHERE doc_key = ?1 AND epoch = ?2")?
        .query_row(params![doc_key(id), epoch], |row| row.get(0))?;
    Ok(logged.unsigned_abs())
}

/// Logs the change and saves the document once the log is long.
pub fn persist_change(
    conn: &Connection,
    doc: &SyncDoc,
    bytes: &[u8],
    bundle: bool,
    now: &str,
) -> Result<(), PersistError> {
    let logged = log_change(conn, doc.id(), doc.epoch(), bytes, bundle)?;
    if logged >= SAVE_EVERY_CHANGES {
        save_doc(conn, doc, now)?;
    }
    Ok(())
}

/// Makes `doc` (a new epoch) the stored document: saves it, deletes the older epochs'
/// history and outbox, and queues the writer's carry-over change, if any.
pub fn replace_epoch(
    conn: &Connection,
    doc: &SyncDoc,
    carried: Option<&ChangeHash>,
    now: &str,
) -> Result<(), PersistError> {
    save_doc(conn, doc, now)?;
    let key = doc_key(doc.id());
    for table in ["sync_doc", "sync_change", "sync_outbox"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE doc_key = ?1 AND epoch < ?2"),
            rusqlite::params![key, doc.epoch()],
        )?;
    }
    if let Some(hash) = carried {
        outbox_push(conn, doc.id(), doc.epoch(), hash, now)?;
    }
    Ok(())
}

/// Puts an own change into the outbox.
pub fn outbox_push(
    conn: &Connection,
    id: &DocId,
    epoch: u32,
    hash: &ChangeHash,
    now: &str,
) -> Result<(), PersistError> {
    conn.prepare_cached(
        "INSERT INTO sync_outbox (doc_key, epoch, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![doc_key(id), epoch, hash.0.as_slice(), now])?;
    Ok(())
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub hash: ChangeHash,
}

/// The outbox of `doc`, oldest first.
pub fn outbox(conn: &Connection, id: &DocId, epoch: u32) -> Result<Vec<OutboxEntry>, PersistError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, hash FROM sync_outbox WHERE doc_key = ?1 AND epoch = ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![doc_key(id), epoch], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, hash) = row?;
        let hash: [u8; 32] = hash.try_into().map_err(|_| PersistError::BadHash)?;
        entries.push(OutboxEntry {
            id,
            hash: ChangeHash(hash),
        });
    }
    Ok(entries)
}

/// Number of changes waiting for HQ's acknowledgement, all documents.
pub fn outbox_len(conn: &Connection) -> Result<u64, PersistError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM sync_outbox", [], |row| row.get(0))?;
    Ok(n.unsigned_abs())
}

/// Whether an own movement (any `stock_movement` that is not kind `peer`) has an id above
/// `mark`: committed, but not yet in a change.
pub fn movements_above(conn: &Connection, mark: i64) -> Result<bool, PersistError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM stock_movement WHERE id > ?1 AND kind != 'peer')",
        )?
        .query_row([mark], |row| row.get(0))?)
}

/// Whether own movements wait above the stored high-water mark for a change.
pub fn unrecorded_movements(conn: &Connection) -> Result<bool, PersistError> {
    let mark = state_get(conn, KEY_MOVEMENT_MARK)?.unwrap_or(0);
    movements_above(conn, mark)
}

/// What still has to reach HQ: the outbox, plus one for own movements not yet recorded in
/// a change (they become one or a few changes at the next publish). This is what
/// `storenode_sync_outbox_length` shows, so 0 still means "HQ has everything".
pub fn pending_len(conn: &Connection) -> Result<u64, PersistError> {
    Ok(outbox_len(conn)? + u64::from(unrecorded_movements(conn)?))
}

/// Removes acknowledged rows.
pub fn outbox_remove(conn: &Connection, ids: &[i64]) -> Result<(), PersistError> {
    let mut stmt = conn.prepare_cached("DELETE FROM sync_outbox WHERE id = ?1")?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}

pub fn state_get(conn: &Connection, key: &str) -> Result<Option<i64>, PersistError> {
    Ok(conn
        .prepare_cached("SELECT value FROM sync_state WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?)
}

pub fn state_delete(conn: &Connection, key: &str) -> Result<(), PersistError> {
    conn.prepare_cached("DELETE FROM sync_state WHERE key = ?1")?
        .execute([key])?;
    Ok(())
}

pub fn state_set(conn: &Connection, key: &str, value: i64) -> Result<(), PersistError> {
    conn.prepare_cached(
        "INSERT INTO sync_state (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// The change hashes stored for a document in `sync_doc_hash`, each with whether it is one
/// of the heads; empty when none were stored.
pub fn doc_hashes(
    conn: &Connection,
    id: &DocId,
    epoch: u32,
) -> Result<Vec<(ChangeHash, bool)>, PersistError> {
    let mut stmt = conn
        .prepare_cached("SELECT hash, head FROM sync_doc_hash WHERE doc_key = ?1 AND epoch = ?2")?;
    let rows = stmt.query_map(params![doc_key(id), epoch], |row| {
        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)? != 0))
    })?;
    let mut hashes = Vec::new();
    for row in rows {
        let (hash, head) = row?;
        let hash: [u8; 32] = hash.try_into().map_err(|_| PersistError::BadHash)?;
        hashes.push((ChangeHash(hash), head));
    }
    Ok(hashes)
}

/// Adds `added` to a document's stored change hashes and makes `heads` its heads (each of
/// them is among the hashes stored or added).
pub fn note_doc_hashes(
    conn: &Connection,
    id: &DocId,
    epoch: u32,
    heads: &[ChangeHash],
    added: &[ChangeHash],
) -> Result<(), PersistError> {
    let key = doc_key(id);
    conn.prepare_cached(
        "UPDATE sync_doc_hash SET head = 0 WHERE doc_key = ?1 AND epoch = ?2 AND head = 1",
    )?
    .execute(params![key, epoch])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO sync_doc_hash (doc_key, epoch, hash, head) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(doc_key, epoch, hash) DO UPDATE SET head = max(head, excluded.head)",
    )?;
    for hash in added {
        insert.execute(params![key, epoch, hash.0.as_slice(), 0])?;
    }
    for hash in heads {
        insert.execute(params![key, epoch, hash.0.as_slice(), 1])?;
    }
    Ok(())
}
