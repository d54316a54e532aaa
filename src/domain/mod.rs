//! Pure business rules: no SQLite, no automerge, no I/O (the floor above the leaves, see docs/architecture.md).

pub mod coupons;
pub mod customer;
pub mod escrow;
#[cfg(test)]
mod fold_testing;
pub mod ids;
pub mod loyalty;
pub mod member_find;
pub mod orders;
pub mod pricing;
pub mod stock;
pub mod transfers;

/// The writer name HQ uses in every document (store writers are `{store}.{node}`).
pub const HQ_WRITER: &str = "hq";
