//! This incarnation's standing as the node's writer: what it hears on its own status topic
//! (see `sync::mqtt::claim`), and the end of its wait to catch up with HQ before it writes.

use automerge::ChangeHash;
use tokio::sync::mpsc;

use super::super::{Cmd, Ctx, lock, to_store_error};
use crate::crdt::doc::DocId;
use crate::sync::local;
use crate::sync::mqtt::claim::{Verdict, judge};

/// What this incarnation heard on its own status topic (see `sync::mqtt::claim`).
pub(super) fn on_own_status(
    ctx: &Ctx,
    payload: &[u8],
    retain: bool,
    cmd: &mpsc::UnboundedSender<Cmd>,
) {
    match judge(&ctx.claim, payload, retain) {
        Verdict::Mine => ctx
            .shared
            .own_status_seen
            .store(true, std::sync::atomic::Ordering::Relaxed),
        Verdict::ClaimAgain => {
            let _ = cmd.send(Cmd::ClaimAgain);
        }
        Verdict::Ignore => {}
        Verdict::Yield(earlier) => {
            let reason = format!(
                "another box is live as writer {} (incarnation {}, started at unix ms {}); this one (incarnation {}) refuses to sync: give one of them another node id, or stop it",
                ctx.writer, earlier.incarnation, earlier.started_ms, ctx.claim.incarnation
            );
            tracing::error!(writer = %ctx.writer, incarnation = %ctx.claim.incarnation, other = %earlier.incarnation, "{reason}");
            *lock(&ctx.shared.refused) = Some(reason);
            ctx.shutdown.cancel();
        }
    }
}

/// Ends this incarnation's wait ([`local::NodeDocs::require_adoption`]) once it holds every
/// change HQ has of the stock and orders documents: HQ's retained heads arrived before the
/// echo of this node's own status, this node is on their epoch (a database restored from
/// before an epoch switch moves over first, so nothing is written into the closed epoch),
/// and every hash in them is in the documents (a `Need` fetched what was missing). No heads
/// from HQ (a store it does not know yet) means nothing to wait for. The commit that ends
/// the wait records everything sold meanwhile, on top of the totals caught up.
pub(super) async fn try_adopt(ctx: &Ctx) -> Result<(), String> {
    let seen = ctx
        .shared
        .own_status_seen
        .load(std::sync::atomic::Ordering::Relaxed);
    if !seen || !local::lock(&ctx.docs).is_adopting() {
        return Ok(());
    }
    let hq_heads: Vec<(DocId, u32, Vec<ChangeHash>)> = {
        let heads = lock(&ctx.shared.hq_heads);
        [&ctx.stock_id, &ctx.orders_id]
            .into_iter()
            .filter_map(|id| {
                heads
                    .get(id)
                    .map(|(epoch, h)| (id.clone(), *epoch, h.clone()))
            })
            .collect()
    };
    let docs = ctx.docs.clone();
    let adopted = ctx
        .store
        .write(move |conn| {
            let mut guard = local::lock(&docs);
            let caught_up = hq_heads.iter().all(|(id, epoch, heads)| {
                guard.doc(id).is_none_or(|doc| {
                    doc.epoch() > *epoch
                        || (doc.epoch() == *epoch && doc.known_heads(heads).len() == heads.len())
                })
            });
            if caught_up && guard.is_adopting() {
                let now = crate::clock::now_utc();
                guard.finish_adoption(conn, &now).map_err(to_store_error)?;
                return Ok(true);
            }
            Ok(false)
        })
        .await
        .map_err(|e| e.to_string())?;
    if adopted {
        tracing::info!(writer = %ctx.writer, incarnation = ctx.writer.incarnation(), "caught up with HQ; this incarnation writes from now on");
    }
    Ok(())
}
