//! Pure business rules: no SQLite, no automerge, no I/O (the lowest floor, see DESIGN.md).

pub mod pricing;
