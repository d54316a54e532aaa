//! Own movements into stock changes: netted per SKU by SQLite, recorded in chunks.
//!
//! Own movements wait in `stock_movement` above the high-water mark (`sync::node::hook`)
//! until they are recorded as changes: per SKU the net of everything since the mark, so a
//! long backlog ships one put per SKU touched. SQLite nets them (`GROUP BY sku` over the id
//! range, in its own temporary b-tree), so what this process holds is one row per SKU,
//! never one per movement: 1,000,000 offline movements over 10,000 SKUs cost 10,000 rows.
//!
//! A pass covers the movements in `(mark, upper]` and is recorded in chunks of at most
//! [`MAX_KEYS_PER_CHANGE`] keys, one change each. A chunk's change, its outbox row and the
//! pass's progress (`upper`, and how many SKUs of the pass are recorded, in SKU order) commit
//! together; the last chunk moves the mark to `upper` and clears the progress. So the
//! publisher can commit and publish a chunk while it records the next one, and a crash
//! between two chunks resumes the pass where its last committed chunk left it: every SKU of
//! the pass is recorded once. The movements of a pass never change (the ledger is append
//! only and ids grow), so the same query over the same range gives the same SKUs in the
//! same order at every resumption.

use automerge::ChangeHash;
use rusqlite::Connection;

use super::{LocalError, NodeDocs, reserved_key};
use crate::crdt::stock::Movement;
use crate::sync::persist::{self, KEY_MOVEMENT_MARK};

/// Most distinct keys one own stock change puts: a change of 2,048 keys of up to 64 bytes
/// stays well under the 256 KiB message cap even before compression.
pub const MAX_KEYS_PER_CHANGE: usize = 2_048;

/// `sync_state`: the highest own movement id of the pass being recorded in chunks.
pub const KEY_BACKLOG_UPPER: &str = "stock_backlog_upper";
/// `sync_state`: how many SKUs of that pass (in SKU order, those with a net movement) are
/// recorded.
pub const KEY_BACKLOG_DONE: &str = "stock_backlog_done";

/// Where a pass over own movements `(mark, upper]` stands: `done` SKUs recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub mark: i64,
    pub upper: i64,
    pub done: i64,
}

/// One change's worth of a pass: the netted movements of `skus` consecutive SKUs.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    pub movements: Vec<Movement>,
    pub skus: i64,
}

/// What is left of the current pass, in chunks (at least one: an empty last chunk still
/// moves the mark past movements that net to zero).
#[derive(Debug, Clone)]
pub struct BacklogPlan {
    pub pass: Pass,
    pub chunks: Vec<Chunk>,
}

/// What recording a chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Committed with the transaction: the change (none if the chunk netted to nothing).
    Recorded(Option<ChangeHash>),
    /// The pass moved on since it was planned (the sync hook recorded it in a commit of its
    /// own): nothing done; plan again.
    Stale,
}

/// The pass in progress, or a new one up to the newest own movement; `None` when no own
/// movement waits. Reads only: run it on a reader connection (the writer, and the sales
/// behind it, do not wait for the scan), then record the chunks in store writes with
/// [`NodeDocs::record_chunk`], which refuses a plan the store moved past.
pub fn plan_backlog(conn: &Connection, max_keys: usize) -> Result<Option<BacklogPlan>, LocalError> {
    let Some(pass) = current_pass(conn)? else {
        return Ok(None);
    };
    let chunks = net_chunks(conn, &pass, max_keys)?;
    Ok(Some(BacklogPlan { pass, chunks }))
}

fn current_pass(conn: &Connection) -> Result<Option<Pass>, LocalError> {
    let mark = persist::state_get(conn, KEY_MOVEMENT_MARK)?.unwrap_or(0);
    if let Some(upper) = persist::state_get(conn, KEY_BACKLOG_UPPER)?
        && upper > mark
    {
        let done = persist::state_get(conn, KEY_BACKLOG_DONE)?.unwrap_or(0);
        return Ok(Some(Pass { mark, upper, done }));
    }
    let upper: Option<i64> = conn
        .prepare_cached("SELECT max(id) FROM stock_movement WHERE id > ?1 AND kind != 'peer'")?
        .query_row([mark], |row| row.get(0))?;
    Ok(upper.map(|upper| Pass {
        mark,
        upper,
        done: 0,
    }))
}

/// The pass's SKUs from `done` on, netted by SQLite, in chunks of at most `max_keys` keys
/// (a SKU's on-hand and reserved keys stay in one chunk).
fn net_chunks(conn: &Connection, pass: &Pass, max_keys: usize) -> Result<Vec<Chunk>, LocalError> {
    // NOT INDEXED: the rowid range and a temporary b-tree for the grouping, not a walk of
    // the whole (sku, id) index over every movement ever made.
    let mut stmt = conn.prepare_cached(
        "SELECT sku, sum(on_hand_delta), sum(reserved_delta)
         FROM stock_movement NOT INDEXED
         WHERE id > ?1 AND id <= ?2 AND kind != 'peer'
         GROUP BY sku HAVING sum(on_hand_delta) != 0 OR sum(reserved_delta) != 0
         ORDER BY sku LIMIT -1 OFFSET ?3",
    )?;
    let mut rows = stmt.query([pass.mark, pass.upper, pass.done])?;
    let max_keys = max_keys.max(2);
    let mut chunks = Vec::new();
    let mut chunk = Chunk::default();
    while let Some(row) = rows.next()? {
        let keys = sku_movements(row.get(0)?, row.get(1)?, row.get(2)?);
        if chunk.movements.len() + keys.len() > max_keys {
            chunks.push(std::mem::take(&mut chunk));
        }
        chunk.movements.extend(keys);
        chunk.skus += 1;
    }
    if chunk.skus > 0 || chunks.is_empty() {
        chunks.push(chunk);
    }
    Ok(chunks)
}

/// A SKU's net movement as document keys: on hand under the SKU, reserved under `{sku}#r`.
fn sku_movements(sku: String, on_hand: i64, reserved: i64) -> Vec<Movement> {
    let mut keys = Vec::with_capacity(2);
    if reserved != 0 {
        keys.push(Movement {
            sku: reserved_key(&sku),
            delta: reserved,
        });
    }
    if on_hand != 0 {
        keys.push(Movement {
            sku,
            delta: on_hand,
        });
    }
    keys
}

impl NodeDocs {
    /// Records every own movement committed since the last record: the rest of a pass in
    /// progress, then the newer movements, in changes of at most [`MAX_KEYS_PER_CHANGE`]
    /// keys, logged and put into the outbox, the mark moved. Run inside a store write (the
    /// group commit's hook, or a test's transaction); returns the last change made.
    pub fn record_local_movements(
        &mut self,
        conn: &Connection,
        at_ms: i64,
        now: &str,
    ) -> Result<Option<ChangeHash>, LocalError> {
        let mut hash = None;
        while let Some(plan) = plan_backlog(conn, MAX_KEYS_PER_CHANGE)? {
            let mut pass = plan.pass;
            let last = plan.chunks.len() - 1;
            for (i, chunk) in plan.chunks.iter().enumerate() {
                match self.record_chunk(conn, &pass, chunk, i == last, at_ms, now)? {
                    ChunkOutcome::Recorded(Some(h)) => hash = Some(h),
                    ChunkOutcome::Recorded(None) => {}
                    // Read in this transaction, the plan cannot be stale unless memory and
                    // SQLite disagree; planning again would loop, so leave it to a reload.
                    ChunkOutcome::Stale => return Err(LocalError::BacklogOutOfStep),
                }
                pass.done += chunk.skus;
            }
        }
        Ok(hash)
    }

    /// Records one chunk of a planned pass as one change, logged and in the outbox, with the
    /// pass's progress (the last chunk: the mark at the pass's end), all in the caller's
    /// transaction. `pass.done` is where the pass stood before this chunk; if the store is
    /// elsewhere by now, nothing is done ([`ChunkOutcome::Stale`]).
    pub fn record_chunk(
        &mut self,
        conn: &Connection,
        pass: &Pass,
        chunk: &Chunk,
        last: bool,
        at_ms: i64,
        now: &str,
    ) -> Result<ChunkOutcome, LocalError> {
        if !self.stands_at(pass) {
            return Ok(ChunkOutcome::Stale);
        }
        let mut hash = None;
        if let Some(change) = self.stock.apply_movements(&chunk.movements, at_ms)? {
            persist::persist_change(conn, self.stock.core(), &change.bytes, false, now)?;
            let id = self.stock.core().id().clone();
            persist::outbox_push(conn, &id, self.epoch, &change.hash, now)?;
            hash = Some(change.hash);
        }
        if last {
            self.set_mark(conn, pass.upper)?;
            self.set_backlog(conn, None)?;
        } else {
            self.set_backlog(conn, Some((pass.upper, pass.done + chunk.skus)))?;
        }
        Ok(ChunkOutcome::Recorded(hash))
    }

    /// Whether the recorded state is where `pass` expects it: the same mark, and the same
    /// pass at the same SKU (or none begun, for a pass planned from its start).
    fn stands_at(&self, pass: &Pass) -> bool {
        self.movement_mark == pass.mark
            && match self.backlog {
                Some((upper, done)) => upper == pass.upper && done == pass.done,
                None => pass.done == 0 && pass.upper > pass.mark,
            }
    }

    pub(super) fn set_backlog(
        &mut self,
        conn: &Connection,
        progress: Option<(i64, i64)>,
    ) -> Result<(), LocalError> {
        match progress {
            Some((upper, done)) => {
                persist::state_set(conn, KEY_BACKLOG_UPPER, upper)?;
                persist::state_set(conn, KEY_BACKLOG_DONE, done)?;
            }
            None if self.backlog.is_some() => {
                persist::state_delete(conn, KEY_BACKLOG_UPPER)?;
                persist::state_delete(conn, KEY_BACKLOG_DONE)?;
            }
            None => {}
        }
        self.backlog = progress;
        Ok(())
    }

    /// A pass in progress at load: `(upper, done)` from `sync_state`.
    pub(super) fn load_backlog(
        conn: &Connection,
        mark: i64,
    ) -> Result<Option<(i64, i64)>, LocalError> {
        Ok(match persist::state_get(conn, KEY_BACKLOG_UPPER)? {
            Some(upper) if upper > mark => Some((
                upper,
                persist::state_get(conn, KEY_BACKLOG_DONE)?.unwrap_or(0),
            )),
            _ => None,
        })
    }
}
