//! The receiver: drains the transport's events and applies what other lanes and HQ send
//! (changes, heads, epoch announcements, status), validated before it touches state.
//!
//! This file holds the task's loop and the routing of each message by its topic; what a
//! message does is in the modules below: `catalog` (HQ's catalog), `documents` (the
//! store's stock and orders documents) and `incarnation` (this writer's own status).

mod catalog;
mod documents;
mod incarnation;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::catalog_worker::CatalogWorker;
use super::{Cmd, Ctx, lock};
use crate::sync::local::{self, CatalogWork, RemoteChanges};
use crate::sync::mqtt::claim::ONLINE;
use crate::sync::mqtt::topics::{self, Scope, Topic};
use crate::sync::mqtt::transport::Incoming;
use crate::sync::wire;
use crate::sync::wire::payload::{MAX_MESSAGE_BYTES, SyncMessage};
use catalog::{Catalog, catalog_release_at, project_catalog, release_catalog, resume_catalog};
use documents::{announce_epoch, apply, on_heads};
use incarnation::{on_own_status, try_adopt};

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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

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
