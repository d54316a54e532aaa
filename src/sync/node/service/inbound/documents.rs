//! Changes and heads of the store's documents as the receiver applies them: changes
//! checked for their authors and applied (the catalog's handed to `catalog`), new
//! stock and orders epochs announced and moved to, and peers' heads compared, HQ's
//! acknowledging the outbox.

use std::collections::BTreeSet;

use automerge::ChangeHash;
use tokio::sync::mpsc;

use super::super::{Cmd, Ctx, epoch_of, lock, note, to_store_error};
use super::catalog::{Catalog, apply_catalog};
use crate::crdt::doc::DocId;
use crate::sync::local::{self, RemoteChanges};
use crate::sync::mqtt::topics::{Id, Scope};
use crate::sync::persist;

/// Asks for the next stock epoch when HQ announces one this node is not on yet.
pub(super) fn announce_epoch(ctx: &Ctx, doc: &DocId, epoch: u32, cmd: &mpsc::UnboundedSender<Cmd>) {
    if *doc != ctx.stock_id && *doc != ctx.orders_id {
        return;
    }
    let current = epoch_of(ctx, doc);
    if epoch > current {
        tracing::info!(writer = %ctx.writer, doc = %persist::doc_key(doc), current, epoch, "HQ opened a new epoch");
        let _ = cmd.send(Cmd::NextEpoch(doc.clone(), epoch));
    }
}

pub(super) async fn apply(
    ctx: &Ctx,
    catalog: Catalog<'_>,
    doc: DocId,
    epoch: u32,
    changes: RemoteChanges,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    if doc != ctx.stock_id && doc != ctx.catalog_id && doc != ctx.orders_id {
        // HQ's changes of other stores' documents share HQ's topic; not ours, not an error.
        return Ok(());
    }
    if doc == ctx.stock_id || doc == ctx.orders_id {
        check_authors(ctx, &changes)?;
        let current = epoch_of(ctx, &doc);
        if epoch < current {
            return Ok(()); // a closed epoch: its writers carried their work over
        }
        if epoch > current {
            return move_to_epoch(ctx, doc, epoch, changes, cmd).await;
        }
    }
    let outcome = if doc == ctx.catalog_id {
        if epoch != 0 {
            return Err(format!(
                "catalog changes for epoch {epoch}; the catalog has only epoch 0"
            ));
        }
        apply_catalog(ctx, catalog, changes).await?
    } else {
        let docs = ctx.docs.clone();
        let id = doc.clone();
        ctx.store
            .write(move |conn| {
                let now = crate::clock::now_utc();
                local::lock(&docs)
                    .apply_remote(conn, &id, epoch, &changes, &now)
                    .map_err(to_store_error)
            })
            .await
            .map_err(|e| e.to_string())?
    };
    tracing::debug!(doc = %persist::doc_key(&doc), applied = outcome.applied, duplicates = outcome.duplicates, queued = outcome.queued, "sync changes applied");
    if !outcome.missing_deps.is_empty() {
        let _ = cmd.send(Cmd::Need(doc));
    }
    if outcome.applied > 0 {
        let _ = cmd.send(Cmd::HeadsChanged);
    }
    Ok(())
}

/// Refuses (all or nothing) changes of this store's documents written by a writer that is
/// neither HQ nor a provisioned lane: applied, it would count here and its dependants
/// could never reach HQ, which refuses it too.
fn check_authors(ctx: &Ctx, changes: &RemoteChanges) -> Result<(), String> {
    let Some(lanes) = &ctx.lanes else {
        return Ok(());
    };
    let authors = match changes {
        RemoteChanges::Changes(list) => list
            .iter()
            .map(|c| crate::crdt::doc::change_author(c))
            .collect::<Result<BTreeSet<_>, _>>(),
        RemoteChanges::Bundle(bundle) => crate::crdt::doc::bundle_authors(bundle),
    }
    .map_err(|e| e.to_string())?;
    match authors.iter().find(|w| !w.is_hq() && !lanes.contains(w)) {
        Some(stranger) => Err(format!(
            "change by {stranger}, which is not a provisioned lane of this store (sync.lanes)"
        )),
        None => Ok(()),
    }
}

/// Changes of a newer epoch of the stock or orders document: move over if they hold HQ's
/// base, else ask HQ for it.
async fn move_to_epoch(
    ctx: &Ctx,
    doc: DocId,
    epoch: u32,
    changes: RemoteChanges,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    let docs = ctx.docs.clone();
    let is_stock = doc == ctx.stock_id;
    let moved = ctx
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            let mut guard = local::lock(&docs);
            let current = if is_stock {
                guard.epoch()
            } else {
                guard.orders().core().epoch()
            };
            if current.checked_add(1) != Some(epoch) {
                return Ok(false); // two epochs ahead: HQ refuses that (docs/sync.md, "Epochs: bounded history")
            }
            let at_ms = crate::clock::now_ms();
            if is_stock {
                guard.move_to_epoch(conn, epoch, &changes, at_ms, &now)
            } else {
                guard.move_orders_to_epoch(conn, epoch, &changes, at_ms, &now)
            }
            .map_err(to_store_error)
        })
        .await
        .map_err(|e| e.to_string())?;
    if moved {
        let kind = if is_stock { "stock" } else { "orders" };
        tracing::info!(writer = %ctx.writer, epoch, "moved to {kind} epoch {epoch}");
        lock(&ctx.shared.peer_heads).retain(|(d, _), _| *d != doc);
        let _ = cmd.send(Cmd::HeadsChanged);
    } else {
        let _ = cmd.send(Cmd::NextEpoch(doc, epoch));
    }
    Ok(())
}

pub(super) async fn on_heads(
    ctx: &Ctx,
    scope: &Scope,
    writer: &Id,
    doc: DocId,
    epoch: u32,
    heads: Vec<ChangeHash>,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    ctx.shared.hear(writer.as_str());
    if *scope == Scope::Hq {
        lock(&ctx.shared.hq_heads).insert(doc.clone(), (epoch, heads.clone()));
    }
    let current_epoch = local::lock(&ctx.docs).epoch_of(&doc);
    if *scope == Scope::Hq && current_epoch.is_some_and(|current| epoch > current) {
        // HQ's retained heads of a newer epoch: the announcement an offline node finds.
        announce_epoch(ctx, &doc, epoch, cmd);
        return Ok(());
    }
    if current_epoch != Some(epoch) {
        return Ok(()); // another epoch or a document we do not keep
    }
    lock(&ctx.shared.peer_heads).insert((doc.clone(), writer.as_str().to_owned()), heads.clone());
    let behind = local::lock(&ctx.docs).lacks_any(&doc, &heads);
    if *scope == Scope::Hq && (doc == ctx.stock_id || doc == ctx.orders_id) {
        let docs = ctx.docs.clone();
        let acked_heads = heads.clone();
        let acked_doc = doc.clone();
        let removed = ctx
            .store
            .write(move |conn| {
                let guard = local::lock(&docs);
                let Some(core) = guard.doc(&acked_doc) else {
                    return Ok(0);
                };
                local::acknowledge(conn, core, &acked_heads).map_err(to_store_error)
            })
            .await
            .map_err(|e| e.to_string())?;
        *lock(&ctx.shared.last_hq_ack_ms) = Some(crate::clock::now_ms());
        if removed > 0 {
            note(&ctx.shared, |t, now| t.acknowledged = Some(now));
        }
        tracing::debug!(removed, "HQ acknowledged outbox changes");
    }
    if behind && *scope == Scope::Hq {
        let _ = cmd.send(Cmd::Need(doc));
    }
    Ok(())
}
