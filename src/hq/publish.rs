//! `storenode hq catalog import FILE`: publishes a catalog file through the running HQ.
//!
//! One POST of a 50,000-item catalog (about 7 MB of JSON) is over HQ's body limit (413), and
//! its single automerge change would be over the sync message limit the stores accept. So
//! the file is sent in chunks of [`CHUNK_ITEMS`] items, one request and one catalog change
//! each, with progress on stderr. Re-running the command after a failure is safe: HQ writes
//! only the fields that differ, so chunks already published become empty changes.

use anyhow::Context;

use crate::crdt::catalog::CatalogItem;
use crate::sync::config::HqConfig;

/// Items per request: about 150 KB of JSON and well under one sync message per change.
pub const CHUNK_ITEMS: usize = 1_000;

/// Publishes every item of `file` (CSV or JSON, as `catalog import`) in chunks, through
/// the running HQ (the catalog document has one writer, the HQ process: a second writer
/// with the same identity would fork its history).
pub async fn catalog_import(cfg: &HqConfig, file: &std::path::Path) -> anyhow::Result<()> {
    let text = tokio::fs::read_to_string(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    let items: Vec<CatalogItem> = crate::store::catalog_file::parse_items(file, &text, &|_| true)?
        .into_iter()
        .map(|i| CatalogItem {
            sku: i.sku,
            name: i.name,
            price_minor: i.price_minor,
            currency: i.currency,
            tax_class: i.tax_class,
            gtins: i.gtins,
            epc_patterns: i.epc_patterns,
            variable_measure: i.variable_measure,
        })
        .collect();
    let client = super::local_client(cfg)?;
    let done = publish_items(&client, &items, |done, total| {
        if total > CHUNK_ITEMS {
            eprintln!("published {done}/{total} items");
        }
    })
    .await?;
    println!("{}", serde_json::json!({ "published": done }));
    Ok(())
}

/// Posts `items` to HQ through `client`, [`CHUNK_ITEMS`] per request; `progress` hears
/// (items published so far, total) after each chunk. Returns how many were published.
pub async fn publish_items(
    client: &crate::http_client::HqClient,
    items: &[CatalogItem],
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<usize> {
    let total = items.len();
    let mut done = 0;
    for chunk in items.chunks(CHUNK_ITEMS) {
        let reply = client
            .post_json("/v1/catalog", &serde_json::json!({ "items": chunk }))
            .await
            .with_context(|| format!("cannot reach HQ at {}", client.base()))?;
        if !reply.is_success() {
            anyhow::bail!(
                "HQ refused items {}..{} of {total} ({}): {}; the first {done} are published, re-running the command is safe",
                done + 1,
                done + chunk.len(),
                reply.status,
                reply.body
            );
        }
        done += chunk.len();
        progress(done, total);
    }
    Ok(done)
}
