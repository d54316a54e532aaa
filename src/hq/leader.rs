//! Which HQ instance cuts epochs: the one holding a PostgreSQL session advisory lock, so the
//! timer's epoch cut runs once however many instances run. The lock goes with its
//! connection: when the leader dies or loses the database, another instance takes it at its
//! next tick. With SQLite there is one instance, and it leads.

use super::db::{Db, Target};

/// Session advisory lock of the leader ("hq-lead" in ASCII).
const LEADER_LOCK: i64 = 0x0068_712d_6c65_6164;

pub struct Leader {
    target: Target,
    /// The connection holding the lock (PostgreSQL), once taken.
    held: Option<Db>,
}

impl Leader {
    pub fn new(target: Target) -> Self {
        Self { target, held: None }
    }

    /// Whether this instance leads now: keeps the lock while its connection answers, or
    /// tries to take it. Blocking (PostgreSQL).
    pub fn leads(&mut self) -> bool {
        if !matches!(self.target, Target::Postgres(_)) {
            return true;
        }
        if let Some(db) = &self.held {
            if db.query_one("SELECT 1", &[], |r| r.get::<i64>(0)).is_ok() {
                return true;
            }
            tracing::warn!("HQ lost its leader lock with its database connection");
            self.held = None;
        }
        match self.try_take() {
            Ok(true) => {
                tracing::info!("this HQ instance leads (cuts epochs on the timer)");
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ask PostgreSQL who leads");
                false
            }
        }
    }

    fn try_take(&mut self) -> Result<bool, super::db::DbError> {
        let db = Db::open(&self.target)?;
        let taken: bool =
            db.query_one("SELECT pg_try_advisory_lock(?1)", &[&LEADER_LOCK], |r| {
                r.get(0)
            })?;
        if taken {
            self.held = Some(db);
        }
        Ok(taken)
    }
}
