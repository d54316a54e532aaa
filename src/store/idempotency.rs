//! Idempotency keys: every write names one; replaying it returns the first result and
//! changes nothing.
//!
//! The key is scoped to the terminal that sent it. The stored row is written in the same
//! savepoint as the write itself, so either both are durable or neither is. A key reused for a
//! different request (another path or body) is refused rather than silently answered with an
//! unrelated result.

use std::sync::Mutex;

use flate2::{Compress, Compression, FlushCompress, Status};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::StoreError;

/// The stored (or fresh) answer to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
}

/// Fingerprint of a request: method, path and body.
pub fn request_hash(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hex::encode(hasher.finalize())
}

pub const MAX_KEY_LEN: usize = 128;

pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("must be 1 to {MAX_KEY_LEN} characters"));
    }
    if key.chars().any(|c| !c.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// Deflates the answers kept for replay with one compressor, reset between answers.
///
/// A fresh compressor per answer cost more than the rest of a sale's SQL: its state (about
/// 270 KiB) is above glibc's mmap threshold, so each sale mapped, zeroed page by page and
/// unmapped it again (a quarter of the writer's CPU at one till, `perf`, docs/benchmarks.md).
/// Only the writer thread packs, so the lock is never contended.
#[derive(Default)]
pub struct AnswerPacker {
    /// Made at the first answer after the start or after [`AnswerPacker::release`].
    deflater: Mutex<Option<Compress>>,
}

impl AnswerPacker {
    /// Raw deflate of `body`, the stream [`inflate`] reads back.
    fn pack(&self, body: &str) -> Result<Vec<u8>, StoreError> {
        let mut deflater = self
            .deflater
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let deflater = deflater.get_or_insert_with(|| Compress::new(Compression::fast(), false));
        deflater.reset();
        deflate_all(deflater, body.as_bytes())
    }

    /// Drops the compressor (about 270 KiB) while the store is idle; the next answer makes
    /// a new one.
    pub fn release(&self) {
        self.deflater
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

fn deflate_all(deflater: &mut Compress, input: &[u8]) -> Result<Vec<u8>, StoreError> {
    let failed = |e: &dyn std::fmt::Display| {
        StoreError::Inconsistent(format!("cannot deflate an answer to keep: {e}"))
    };
    // Room for incompressible input plus the stored blocks' headers.
    let mut out = Vec::with_capacity(input.len() + input.len() / 64 + 64);
    loop {
        let read = usize::try_from(deflater.total_in()).map_err(|e| failed(&e))?;
        let rest = input.get(read..).unwrap_or_default();
        match deflater
            .compress_vec(rest, &mut out, FlushCompress::Finish)
            .map_err(|e| failed(&e))?
        {
            Status::StreamEnd => return Ok(out),
            // Out of room: grow and go on where it stopped. Deflate never needs more than
            // the input and a few bytes per block, so a longer output is a broken stream.
            Status::Ok | Status::BufError if out.capacity() <= 2 * input.len() + 4096 => {
                out.reserve(out.capacity().max(256));
            }
            Status::Ok | Status::BufError => return Err(failed(&"the stream does not end")),
        }
    }
}

/// Runs `write` unless `(terminal, key)` was seen: then returns the first answer.
pub fn run(
    conn: &Connection,
    packer: &AnswerPacker,
    terminal: &str,
    key: &str,
    hash: &str,
    now: &str,
    write: impl FnOnce(&Connection) -> Result<(u16, String), StoreError>,
) -> Result<Answer, StoreError> {
    let seen: Option<(String, u16, String, Option<Vec<u8>>)> = conn
        .prepare_cached("SELECT request_hash, status, response, response_deflate FROM idempotency WHERE terminal = ?1 AND key = ?2")?
        .query_row(params![terminal, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    if let Some((stored_hash, status, plain, deflated)) = seen {
        if stored_hash != hash {
            return Err(StoreError::Conflict(format!(
                "idempotency key {key:?} was already used for a different request"
            )));
        }
        let body = match deflated {
            Some(bytes) => inflate(&bytes)?,
            None => plain,
        };
        return Ok(Answer {
            status,
            body,
            replayed: true,
        });
    }
    let (status, body) = write(conn)?;
    conn.prepare_cached(
        "INSERT INTO idempotency (terminal, key, request_hash, status, response, response_deflate, at) VALUES (?1, ?2, ?3, ?4, '', ?5, ?6)",
    )?
    .execute(params![terminal, key, hash, status, packer.pack(&body)?, now])?;
    Ok(Answer {
        status,
        body,
        replayed: false,
    })
}

/// Kept answers pruned per write job: small, so the job sits between sales in the group
/// commit like one of them and never holds the writer for long.
pub const PRUNE_BATCH: usize = 200;

/// Forgets up to `batch` of the oldest kept answers stamped before `before` (UTC text, the
/// format of `at`); returns how many. Rows are appended in time order, so the oldest are at
/// the start of the table: only the first `batch` rows are looked at, never a scan of the
/// week kept. A row stamped later than the ones after it (the clock was set back) waits at
/// the head until its own stamp is old enough.
pub fn prune(conn: &Connection, before: &str, batch: usize) -> Result<usize, StoreError> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let n = conn
        .prepare_cached(
            "DELETE FROM idempotency WHERE rowid IN (
                 SELECT rowid FROM (SELECT rowid, at FROM idempotency ORDER BY rowid LIMIT ?2)
                  WHERE at < ?1)",
        )?
        .execute(params![before, limit])?;
    Ok(n)
}

fn inflate(bytes: &[u8]) -> Result<String, StoreError> {
    use std::io::Read;
    let mut body = String::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_string(&mut body)
        .map_err(|e| StoreError::Inconsistent(format!("a kept answer does not inflate: {e}")))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_db;

    /// `run` with a packer of its own, as a store's first write has.
    fn run_fresh(
        conn: &Connection,
        terminal: &str,
        key: &str,
        hash: &str,
        now: &str,
        write: impl FnOnce(&Connection) -> Result<(u16, String), StoreError>,
    ) -> Result<Answer, StoreError> {
        run(
            conn,
            &AnswerPacker::default(),
            terminal,
            key,
            hash,
            now,
            write,
        )
    }

    #[test]
    fn replay_returns_first_answer_without_running() {
        let conn = memory_db();
        let first =
            run_fresh(&conn, "pos1", "k1", "h", "t", |_| Ok((201, "first".into()))).unwrap();
        assert!(!first.replayed);
        let again = run_fresh(&conn, "pos1", "k1", "h", "t", |_| {
            panic!("must not run twice")
        })
        .unwrap();
        assert_eq!(
            (again.status, again.body.as_str(), again.replayed),
            (201, "first", true)
        );
    }

    #[test]
    fn same_key_other_request_is_a_conflict() {
        let conn = memory_db();
        run_fresh(&conn, "pos1", "k1", "h1", "t", |_| Ok((201, "a".into()))).unwrap();
        let err = run_fresh(&conn, "pos1", "k1", "h2", "t", |_| Ok((201, "b".into()))).unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        // Another terminal may use the same key for its own request.
        assert!(
            !run_fresh(&conn, "pos2", "k1", "h2", "t", |_| Ok((201, "b".into())))
                .unwrap()
                .replayed
        );
    }

    #[test]
    fn failed_write_stores_nothing() {
        let conn = memory_db();
        let err = run_fresh(&conn, "pos1", "k1", "h", "t", |_| {
            Err(StoreError::not_found("x"))
        });
        assert!(err.is_err());
        assert!(
            !run_fresh(&conn, "pos1", "k1", "h", "t", |_| Ok((201, "ok".into())))
                .unwrap()
                .replayed
        );
    }

    #[test]
    fn answers_are_kept_deflated_and_old_plain_ones_still_replay() {
        let conn = memory_db();
        let receipt =
            "{\"lines\":[".to_string() + &"{\"sku\":\"A\",\"quantity\":1},".repeat(20) + "]}";
        let kept = receipt.clone();
        run_fresh(&conn, "pos1", "new", "h", "t", move |_| Ok((201, kept))).unwrap();
        let (plain, deflated): (String, Vec<u8>) = conn
            .query_row(
                "SELECT response, response_deflate FROM idempotency WHERE key = 'new'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(plain, "");
        assert!(
            deflated.len() < receipt.len() / 2,
            "{} bytes",
            deflated.len()
        );
        let again = run_fresh(&conn, "pos1", "new", "h", "t", |_| panic!("replayed")).unwrap();
        assert_eq!(again.body, receipt);

        // Kept by a binary from before the column: plain text, no deflated copy.
        conn.execute(
            "INSERT INTO idempotency (terminal, key, request_hash, status, response, at)
             VALUES ('pos1', 'old', 'h', 201, 'old answer', 't')",
            [],
        )
        .unwrap();
        let old = run_fresh(&conn, "pos1", "old", "h", "t", |_| panic!("replayed")).unwrap();
        assert_eq!((old.body.as_str(), old.replayed), ("old answer", true));
    }

    #[test]
    fn pruning_forgets_old_answers_in_batches_and_keeps_young_ones() {
        let conn = memory_db();
        for k in 0..5 {
            let at = format!("2026-01-0{}T00:00:00.000Z", k + 1);
            run_fresh(&conn, "pos1", &format!("k{k}"), "h", &at, |_| {
                Ok((201, "old".into()))
            })
            .unwrap();
        }
        let cutoff = "2026-01-04T00:00:00.000Z";
        assert_eq!(prune(&conn, cutoff, 2).unwrap(), 2, "one batch at a time");
        assert_eq!(prune(&conn, cutoff, 2).unwrap(), 1);
        assert_eq!(prune(&conn, cutoff, 2).unwrap(), 0, "the rest are younger");
        // A pruned key is forgotten: its retry is a new write.
        let again = run_fresh(&conn, "pos1", "k0", "h", "t", |_| Ok((201, "new".into()))).unwrap();
        assert!(!again.replayed);
        // A kept one still replays.
        let kept = run_fresh(&conn, "pos1", "k4", "h", "t", |_| panic!("replayed")).unwrap();
        assert_eq!((kept.body.as_str(), kept.replayed), ("old", true));
    }

    #[test]
    fn one_packer_keeps_answer_after_answer_and_grows_for_long_ones() {
        let packer = AnswerPacker::default();
        // Incompressible and longer than the first guess of the output's size.
        let noise: String = (0..40_000u32)
            .map(|i| char::from(b'!' + (i.wrapping_mul(2_654_435_761) >> 25) as u8 % 90))
            .collect();
        for body in ["{\"total\":1}", noise.as_str(), "", "{\"total\":2}"] {
            assert_eq!(inflate(&packer.pack(body).unwrap()).unwrap(), body);
        }
    }

    #[test]
    fn a_released_packer_packs_the_same_bytes_again() {
        let packer = AnswerPacker::default();
        let body = "{\"sale_no\":\"pos1-000001\",\"total\":1299}";
        let first = packer.pack(body).unwrap();
        packer.release();
        assert!(packer.deflater.lock().unwrap().is_none());
        assert_eq!(packer.pack(body).unwrap(), first);
    }

    proptest::proptest! {
        #[test]
        fn a_reused_packer_round_trips_any_answer(bodies in proptest::collection::vec(".{0,3000}", 1..8)) {
            let packer = AnswerPacker::default();
            for body in &bodies {
                proptest::prop_assert_eq!(&inflate(&packer.pack(body).unwrap()).unwrap(), body);
            }
        }
    }
}
