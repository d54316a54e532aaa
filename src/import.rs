//! `storenode catalog import FILE`: the file's items into the node's database, in one
//! transaction (the file's rules are in `store::catalog_file`).

use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::store::catalog;
use crate::store::catalog_file::{GtinMove, ImportError, Rules, gtin_moves, parse_items_with};
use crate::store::{NoHook, Store, StoreOptions};

#[derive(Debug)]
pub struct ImportReport {
    pub imported: usize,
    pub catalog_size: u64,
    /// GTINs moved (only with `--move-gtins`).
    pub moved: Vec<GtinMove>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.moved {
            writeln!(f, "{m}")?;
        }
        write!(
            f,
            "imported {} items in one transaction; catalog now holds {}",
            self.imported, self.catalog_size
        )
    }
}

/// Imports `file` into the node's database (works whether or not the node is running: SQLite
/// serialises the writers). `move_gtins`: allow GTINs to move between SKUs.
pub async fn import_file(
    config: &Config,
    file: &Path,
    move_gtins: bool,
) -> Result<ImportReport, ImportError> {
    let text = std::fs::read_to_string(file).map_err(|source| ImportError::Read {
        file: file.display().to_string(),
        source,
    })?;
    let tax = config.tax.clone();
    let items = parse_items_with(
        file,
        &text,
        &Rules {
            known_tax_class: &|class| tax.rate_bp(class).is_some(),
            currency: Some(&config.node.currency),
        },
    )?;
    let store = Store::open(
        StoreOptions {
            path: config.database.path.clone(),
            max_batch: 1,
            writer_id: config.node.writer_id(),
        },
        Box::new(NoHook),
    )?;
    let imported = items.len();
    let result = store
        .write(move |conn| {
            // Checked in the transaction that writes, so no other writer slips in between.
            let moves = gtin_moves(conn, &items)?;
            if !moves.is_empty() && !move_gtins {
                return Ok(Err(moves));
            }
            let now = crate::clock::now_utc();
            for item in &items {
                catalog::upsert(conn, item, &now)?;
            }
            Ok(Ok((catalog::count(conn)?, moves)))
        })
        .await;
    store.close().await;
    // `sudo storenode catalog import` before the service's first start would otherwise
    // leave a root-owned store.db that the service opens read-only.
    if let Some(note) =
        crate::ownership::hand_over_database(&config.database.path, &config.node.data_dir)
    {
        tracing::warn!(note = %note, "database ownership");
    }
    match result? {
        Ok((catalog_size, moved)) => Ok(ImportReport {
            imported,
            catalog_size,
            moved,
        }),
        Err(moves) => Err(ImportError::GtinMoves {
            file: file.display().to_string(),
            moves,
        }),
    }
}
