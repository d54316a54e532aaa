//! The receiver: drains the transport's events and applies what other lanes and HQ send
//! (changes, heads, epoch announcements, status), validated before it touches state.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use automerge::ChangeHash;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::catalog_worker::CatalogWorker;
use super::{Cmd, Ctx, epoch_of, lock, to_store_error};
use crate::crdt::catalog::CatalogDoc;
use crate::crdt::doc::{ApplyOutcome, DocId};
use crate::sync::local::{self, CatalogDelta, CatalogWork, RemoteChanges};
use crate::sync::mqtt::claim::{ONLINE, Verdict, judge};
use crate::sync::mqtt::topics::{self, Id, Scope, Topic};
use crate::sync::mqtt::transport::Incoming;
use crate::sync::persist;
use crate::sync::wire;
use crate::sync::wire::payload::{MAX_MESSAGE_BYTES, SyncMessage};

pub(super) async fn receive(
    ctx: Arc<Ctx>,
    mut incoming: mpsc::Receiver<Incoming>,
    cmd: mpsc::UnboundedSender<Cmd>,
    shutdown: CancellationToken,
) {
    // HQ's catalog document and the rows derived from its changes not written yet: this
    // task's alone (it handles one message at a time).
    let mut catalog = CatalogWork::default();
    let worker = CatalogWorker::spawn();
    // A projection a previous run left unfinished (crash or stop mid-catalog).
    resume_catalog(&ctx, &worker, &mut catalog).await;
    project_catalog(&ctx, &mut catalog, &shutdown).await;
    let mut release_at = catalog_release_at(&catalog);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep_until(release_at) => {
                release_catalog(&worker, &mut catalog).await;
                release_at = catalog_release_at(&catalog);
                continue;
            }
            event = incoming.recv() => event,
        };
        match event {
            None => return,
            Some(Incoming::Connected) => {
                tracing::info!(writer = %ctx.writer, "sync connected to the broker");
                super::note(&ctx.shared, |t, now| {
                    *t = super::CatchUp {
                        connected: Some(now),
                        ..Default::default()
                    };
                });
                let _ = cmd.send(Cmd::Connected);
            }
            Some(Incoming::Disconnected { reason }) => {
                tracing::warn!(writer = %ctx.writer, reason, "sync offline; sales continue");
                // Offline, sales wait for the next publish again, netted per SKU then.
                local::lock(&ctx.docs).set_recording_in_commit(false);
            }
            Some(Incoming::Message {
                topic,
                payload,
                retain,
                ..
            }) => {
                ctx.shared.metrics.count_in(payload.len());
                if let Err(reason) = handle_message(
                    &ctx,
                    (&worker, &mut catalog),
                    &topic,
                    &payload,
                    retain,
                    &cmd,
                )
                .await
                {
                    ctx.shared.metrics.reject();
                    tracing::warn!(topic, reason, "sync message rejected");
                }
                if let Err(e) = try_adopt(&ctx).await {
                    tracing::warn!(error = %e, "cannot finish catching up with HQ; retried");
                }
                project_catalog(&ctx, &mut catalog, &shutdown).await;
                release_at = catalog_release_at(&catalog);
            }
        }
    }
}

/// How long HQ's catalog document stays in memory after the last message: a publication
/// comes as a run of 1,000-item changes, and reading the document again for each of them
/// would cost more than the run.
const CATALOG_IDLE: Duration = Duration::from_secs(10);

/// When to drop the catalog document, if it is in memory.
fn catalog_release_at(catalog: &CatalogWork) -> Option<Instant> {
    catalog.is_loaded().then(|| Instant::now() + CATALOG_IDLE)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Drops the catalog document once its projection is done, and gives the heap it used
/// back to the system (on a blocking thread: both take milliseconds for a large catalog).
async fn release_catalog(worker: &CatalogWorker, catalog: &mut CatalogWork) {
    let Some(doc) = catalog.take_idle() else {
        return;
    };
    let released = worker
        .run(move || {
            drop(doc);
            crate::memory::release_freed()
        })
        .await;
    tracing::debug!(
        released = released.unwrap_or(false),
        rss_kib = crate::memory::resident_kib(),
        "catalog document dropped until HQ's next change"
    );
}

/// At start, when the pending flag says a projection was interrupted: queues the rows of
/// the stored catalog that SQLite does not hold yet (read and compared on a reader
/// connection, off the writer).
async fn resume_catalog(ctx: &Ctx, worker: &CatalogWorker, catalog: &mut CatalogWork) {
    let store = ctx.store.clone();
    let writer = ctx.writer.clone();
    let found = worker
        .run(move || {
            store.read_blocking(|conn| {
                if !local::projection_pending(conn).map_err(to_store_error)? {
                    return Ok(None);
                }
                let doc = local::read_catalog(conn, writer).map_err(to_store_error)?;
                let rows = local::unwritten_items(conn, &doc).map_err(to_store_error)?;
                Ok(Some((doc, rows)))
            })
        })
        .await;
    match found {
        Ok(Ok(Some((doc, rows)))) => {
            tracing::info!(
                items = rows.len(),
                "an interrupted catalog projection resumes with the items not written"
            );
            catalog.keep(doc);
            catalog.queue(rows);
            // Nothing missing (stopped after the last row, before the flag was cleared):
            // the flag is cleared by an empty last job.
            if catalog.pending() == 0 {
                let cleared = ctx
                    .store
                    .write(|conn| {
                        let now = crate::clock::now_utc();
                        local::write_items(conn, &[], true, &now, None).map_err(to_store_error)
                    })
                    .await;
                if let Err(e) = cleared {
                    tracing::warn!(error = %e, "cannot clear the catalog projection flag");
                }
            }
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot resume the catalog projection"),
        Err(e) => tracing::warn!(error = %e, "catalog projection check failed"),
    }
}

/// Writes the rows of HQ's catalog changes into SQLite in small write jobs (at most
/// [`local::CATALOG_BATCH`] rows or [`local::CATALOG_JOB_BUDGET`] of writer time each),
/// so sales queue between them instead of behind the whole catalog.
async fn project_catalog(ctx: &Ctx, catalog: &mut CatalogWork, shutdown: &CancellationToken) {
    let total = catalog.pending();
    if total == 0 {
        return;
    }
    tracing::info!(
        items = total,
        "projecting HQ's catalog changes into the store"
    );
    while catalog.pending() > 0 && !shutdown.is_cancelled() {
        let (batch, last) = catalog.next_batch(local::CATALOG_BATCH);
        let batch = Arc::new(batch);
        let rows = Arc::clone(&batch);
        let written = ctx
            .store
            .write(move |conn| {
                let now = crate::clock::now_utc();
                local::write_items(conn, &rows, last, &now, Some(local::CATALOG_JOB_BUDGET))
                    .map_err(to_store_error)
            })
            .await;
        match written {
            Ok(count) => catalog.written(&batch, count),
            Err(e) => {
                // Left queued (and flagged on disk): the next message or start retries.
                tracing::warn!(error = %e, "catalog projection paused");
                break;
            }
        }
    }
}

/// A message of HQ's catalog changes: applied to the document and turned into rows on the
/// catalog thread; the writer then logs the change in one short job, and the rows follow
/// in their own jobs ([`project_catalog`]).
async fn apply_catalog(
    ctx: &Ctx,
    (worker, catalog): Catalog<'_>,
    changes: RemoteChanges,
) -> Result<ApplyOutcome, String> {
    let doc = catalog.take_doc();
    let store = ctx.store.clone();
    let writer = ctx.writer.clone();
    let id = ctx.catalog_id.clone();
    let (doc, delta) = worker
        .run(move || derive_off_writer(&store, writer, &id, doc, changes))
        .await?;
    let (doc, delta) = match (doc, delta) {
        (Some(doc), Ok(delta)) => (doc, delta),
        (doc, Err(reason)) => {
            if let Some(doc) = doc {
                catalog.keep(doc);
            }
            return Err(reason);
        }
        (None, Ok(_)) => return Err("the catalog document went missing".to_owned()),
    };
    let mut delta = delta;
    if !delta.changed() {
        catalog.keep(doc);
        return Ok(delta.outcome);
    }
    let rows = delta.take_rows();
    let follow = catalog.rows_follow(&rows);
    let docs = ctx.docs.clone();
    let committed = ctx
        .store
        .write(move |conn| {
            let now = crate::clock::now_utc();
            local::lock(&docs)
                .commit_catalog_change(conn, &delta, follow, &now)
                .map_err(to_store_error)?;
            Ok(delta.outcome)
        })
        .await;
    match committed {
        Ok(outcome) => {
            catalog.keep(doc);
            catalog.queue(rows);
            Ok(outcome)
        }
        Err(e) => {
            // The document holds a change SQLite does not: dropped, the next change reads
            // the stored one (HQ sends this one again, the node's heads lack it).
            drop(worker.run(move || drop(doc)).await);
            Err(e.to_string())
        }
    }
}

/// The blocking part of [`apply_catalog`]: the document (read on a reader connection when
/// not in memory) with HQ's changes applied, and what they mean for SQLite. On error the
/// document comes back unchanged, if there was one.
fn derive_off_writer(
    store: &crate::store::Store,
    writer: crate::crdt::doc::WriterId,
    id: &DocId,
    doc: Option<CatalogDoc>,
    changes: RemoteChanges,
) -> (Option<CatalogDoc>, Result<CatalogDelta, String>) {
    let mut doc = match doc {
        Some(doc) => doc,
        None => match store
            .read_blocking(|conn| local::read_catalog(conn, writer).map_err(to_store_error))
        {
            Ok(doc) => doc,
            Err(e) => return (None, Err(format!("cannot read the catalog document: {e}"))),
        },
    };
    let logged = match store
        .read_blocking(|conn| persist::logged_changes(conn, id, 0).map_err(to_store_error))
    {
        Ok(logged) => logged,
        Err(e) => return (Some(doc), Err(e.to_string())),
    };
    let delta = local::derive_change(&mut doc, changes, logged).map_err(|e| e.to_string());
    (Some(doc), delta)
}

/// The receiving task's catalog thread and work, lent to the message handlers.
type Catalog<'a> = (&'a CatalogWorker, &'a mut CatalogWork);

async fn handle_message(
    ctx: &Ctx,
    catalog: Catalog<'_>,
    topic: &str,
    payload: &[u8],
    retain: bool,
    cmd: &mpsc::UnboundedSender<Cmd>,
) -> Result<(), String> {
    let topic = topics::parse(topic).map_err(|e| e.to_string())?;
    if let Topic::Pii { .. } = &topic {
        return ctx.pii.on_message(&topic, payload).await;
    }
    if let Topic::EpcisAck { .. } = &topic {
        return ctx.epcis.on_message(&topic, payload).await;
    }
    if let Topic::Found { scope, writer, .. } = &topic {
        if *scope != ctx.scope || *writer != ctx.me {
            return Err("a member lookup answer for another writer".into());
        }
        return ctx.finder.on_reply(payload);
    }
    if let Topic::Retired { scope, writer, .. } = &topic {
        if *scope != ctx.scope {
            return Err("a retirement of another store's lane".into());
        }
        super::lanes::note_retirement(ctx, writer.as_str(), payload);
        return Ok(());
    }
    if let Topic::Status { scope, writer, .. } = &topic {
        if *writer == ctx.me {
            on_own_status(ctx, payload, retain, cmd);
        } else if *scope == ctx.scope {
            ctx.shared.hear(writer.as_str());
            lock(&ctx.shared.statuses).insert(
                writer.to_string(),
                crate::sync::mqtt::claim::is_online(payload),
            );
        }
        if *scope == Scope::Hq {
            let online = payload == ONLINE;
            let mut instances = lock(&ctx.shared.hq_online);
            let was_online = instances.contains(writer.as_str());
            if online {
                instances.insert(writer.to_string());
            } else {
                instances.remove(writer.as_str());
            }
            drop(instances);
            if online && !was_online {
                // HQ (re)started: whatever it did not acknowledge may never have reached it
                // (it may not know this store yet, so its heads would not ask): re-offer.
                let _ = cmd.send(Cmd::Connected);
            }
        }
        return Ok(());
    }
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "payload of {} bytes is over the cap",
            payload.len()
        ));
    }
    let message = SyncMessage::decode(payload).map_err(|e| e.to_string())?;
    match (&topic, message) {
        (Topic::Changes { writer, .. }, _) if *writer == ctx.me => Ok(()),
        (Topic::Changes { writer, .. } | Topic::Heads { writer, .. }, _)
            if lock(&ctx.shared.retired).contains_key(writer.as_str()) =>
        {
            Err(format!(
                "{writer} was retired (storenode lane retire); its messages are refused"
            ))
        }
        (
            Topic::Changes { .. } | Topic::Response { .. },
            SyncMessage::Changes {
                doc,
                epoch,
                changes,
            },
        ) => {
            apply(
                ctx,
                catalog,
                doc,
                epoch,
                RemoteChanges::Changes(changes),
                cmd,
            )
            .await
        }
        (
            Topic::Changes { .. } | Topic::Response { .. },
            SyncMessage::Bundle { doc, epoch, bundle },
        ) => apply(ctx, catalog, doc, epoch, RemoteChanges::Bundle(bundle), cmd).await,
        (
            Topic::Changes {
                scope: Scope::Hq, ..
            },
            SyncMessage::EpochAnnounce { doc, epoch, .. },
        ) => {
            announce_epoch(ctx, &doc, epoch, cmd);
            Ok(())
        }
        (Topic::Heads { writer, .. }, _) if *writer == ctx.me => Ok(()),
        (Topic::Heads { scope, writer, .. }, SyncMessage::Heads { doc, epoch, heads }) => {
            on_heads(
                ctx,
                scope,
                writer,
                doc,
                epoch,
                wire::hashes_from_wire(&heads),
                cmd,
            )
            .await
        }
        (_, other) => Err(format!("unexpected {} on this topic", message_name(&other))),
    }
}

fn message_name(m: &SyncMessage) -> &'static str {
    match m {
        SyncMessage::Changes { .. } => "Changes",
        SyncMessage::Heads { .. } => "Heads",
        SyncMessage::Need { .. } => "Need",
        SyncMessage::EpochAnnounce { .. } => "EpochAnnounce",
        SyncMessage::Bundle { .. } => "Bundle",
    }
}

/// Asks for the next stock epoch when HQ announces one this node is not on yet.
fn announce_epoch(ctx: &Ctx, doc: &DocId, epoch: u32, cmd: &mpsc::UnboundedSender<Cmd>) {
    if *doc != ctx.stock_id && *doc != ctx.orders_id {
        return;
    }
    let current = epoch_of(ctx, doc);
    if epoch > current {
        tracing::info!(writer = %ctx.writer, doc = %persist::doc_key(doc), current, epoch, "HQ opened a new epoch");
        let _ = cmd.send(Cmd::NextEpoch(doc.clone(), epoch));
    }
}

async fn apply(
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

async fn on_heads(
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
            super::note(&ctx.shared, |t, now| t.acknowledged = Some(now));
        }
        tracing::debug!(removed, "HQ acknowledged outbox changes");
    }
    if behind && *scope == Scope::Hq {
        let _ = cmd.send(Cmd::Need(doc));
    }
    Ok(())
}

/// What this incarnation heard on its own status topic (see `sync::mqtt::claim`).
fn on_own_status(ctx: &Ctx, payload: &[u8], retain: bool, cmd: &mpsc::UnboundedSender<Cmd>) {
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
async fn try_adopt(ctx: &Ctx) -> Result<(), String> {
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
