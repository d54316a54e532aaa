//! HQ's catalog changes as the receiver takes them: applied to the document on the
//! catalog thread, logged by the writer in one short job, projected into SQLite in small
//! write jobs (resumed at start when a run stopped midway), and the document dropped when
//! HQ has been quiet for a while.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::catalog_worker::CatalogWorker;
use super::super::{Ctx, to_store_error};
use crate::crdt::catalog::CatalogDoc;
use crate::crdt::doc::{ApplyOutcome, DocId};
use crate::sync::local::{self, CatalogDelta, CatalogWork, RemoteChanges};
use crate::sync::persist;

/// How long HQ's catalog document stays in memory after the last message: a publication
/// comes as a run of 1,000-item changes, and reading the document again for each of them
/// would cost more than the run.
const CATALOG_IDLE: Duration = Duration::from_secs(10);

/// When to drop the catalog document, if it is in memory.
pub(super) fn catalog_release_at(catalog: &CatalogWork) -> Option<Instant> {
    catalog.is_loaded().then(|| Instant::now() + CATALOG_IDLE)
}

/// Drops the catalog document once its projection is done, and gives the heap it used
/// back to the system (on a blocking thread: both take milliseconds for a large catalog).
pub(super) async fn release_catalog(worker: &CatalogWorker, catalog: &mut CatalogWork) {
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
pub(super) async fn resume_catalog(ctx: &Ctx, worker: &CatalogWorker, catalog: &mut CatalogWork) {
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
pub(super) async fn project_catalog(
    ctx: &Ctx,
    catalog: &mut CatalogWork,
    shutdown: &CancellationToken,
) {
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
pub(super) async fn apply_catalog(
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
pub(super) type Catalog<'a> = (&'a CatalogWorker, &'a mut CatalogWork);
