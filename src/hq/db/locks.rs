//! HQ's write locks (PostgreSQL advisory locks, held until the transaction ends): one per
//! document written, and one per bounded counter that is not a document (a coupon's pool,
//! a member's points, an order id chain-wide). A transaction takes all of its locks at its
//! start, in one global order (by key), and may add only keys above every key it holds:
//! two writers then never wait for each other in a cycle, so none deadlocks, whichever
//! documents they touch. A transaction that breaks the order is refused (on SQLite too, where
//! the locks are otherwise no-ops, so the tests catch it on either backend).

use std::collections::BTreeSet;

use super::{Db, DbError};

/// The advisory lock key of a lock name: 64-bit FNV-1a, the same in every build and
/// instance (PostgreSQL's `hashtext` is 32 bits: two names sharing a key would still be
/// safe, but wait for each other needlessly more often).
pub fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The lock name of a coupon's pool (grants, online redemptions, answers to asks).
pub fn coupon_lock(code: &str) -> String {
    format!("hq-coupon:{code}")
}

/// The lock name of a member's points at HQ (web spends, settlements, grants to lanes).
pub fn member_lock(member: &str) -> String {
    format!("hq-member:{member}")
}

/// The lock name of an order id chain-wide (one id, one order, whichever store).
pub fn order_lock(order_id: &str) -> String {
    format!("hq-order:{order_id}")
}

/// The keys of `names` in the order they are taken: ascending, each once.
pub(super) fn ordered_keys<S: AsRef<str>>(names: &[S]) -> Vec<i64> {
    let keys: BTreeSet<i64> = names.iter().map(|n| lock_key(n.as_ref())).collect();
    keys.into_iter().collect()
}

impl Db {
    /// Takes, for the open transaction, the locks named `names` (documents' row keys,
    /// [`coupon_lock`], [`member_lock`], [`order_lock`]) in the global order. Keys already
    /// held are skipped; a key below one held is refused ([`DbError::LockOrder`]): taking
    /// it could deadlock against a writer that holds it and waits for ours.
    pub fn lock_names<S: AsRef<str>>(&self, names: &[S]) -> Result<(), DbError> {
        let keys = ordered_keys(names);
        let held = self.locks.borrow_mut();
        let new: Vec<i64> = keys.into_iter().filter(|k| !held.contains(k)).collect();
        if let (Some(first), Some(top)) = (new.first(), held.last())
            && first < top
        {
            return Err(DbError::LockOrder {
                names: names.iter().map(|n| n.as_ref().to_owned()).collect(),
            });
        }
        drop(held);
        for key in new {
            if self.is_postgres() {
                self.execute("SELECT pg_advisory_xact_lock(?1)", &[&key])?;
            }
            self.locks.borrow_mut().insert(key);
        }
        Ok(())
    }

    /// Takes, for the open transaction, the lock that lets this instance write document
    /// `doc_key` while other instances write other documents.
    pub fn lock_document(&self, doc_key: &str) -> Result<(), DbError> {
        self.lock_names(&[doc_key])
    }

    /// The transaction ended: its advisory locks went with it.
    pub(super) fn release_locks(&self) {
        self.locks.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hq::db::testing::TestDb;

    #[test]
    fn keys_are_stable_and_distinct() {
        // FNV-1a 64 of "a" (a published test vector): the key must never change between
        // builds, or two HQ versions would not exclude each other.
        assert_eq!(lock_key("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_ne!(lock_key("s1/orders"), lock_key("s2/orders"));
    }

    #[test]
    fn locks_are_taken_in_one_order_only() {
        let dir = TestDb::new();
        let db = Db::open(&dir.target).unwrap();
        let mut names = ["s1/orders", "s2/orders", "hq-coupon:X"];
        names.sort_by_key(|n| lock_key(n));
        db.open_transaction().unwrap();
        db.lock_names(&names[1..2]).unwrap();
        // Above what is held: fine; again: a no-op; below: refused.
        db.lock_names(&names[1..]).unwrap();
        db.lock_names(&names[2..]).unwrap();
        let refused = db.lock_names(&names[..1]);
        assert!(
            matches!(refused, Err(DbError::LockOrder { .. })),
            "{refused:?}"
        );
        db.finish_transaction(false).unwrap();
        // A new transaction starts with no lock held.
        db.open_transaction().unwrap();
        db.lock_names(&names[..1]).unwrap();
        db.finish_transaction(true).unwrap();
    }
}
