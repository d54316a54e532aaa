//! Stock as per-writer totals: every writer (a lane, HQ) only adds to its own total per SKU,
//! and a level is the sum over writers, so concurrent sales at several lanes commute and a
//! replayed change adds nothing (the document layout is in `crdt::stock`).

/// One stock movement of a SQLite transaction: `delta` units of `sku` (sale −1, receipt +n).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Movement {
    pub sku: String,
    pub delta: i64,
}
