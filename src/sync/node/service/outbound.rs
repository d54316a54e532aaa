//! The publisher: new outbox changes, orders changes, retained heads, `Need` requests and
//! the status claim; on a timer, the changes a peer still lacks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::reoffer::Reoffers;
use super::{Cmd, Ctx, epoch_of, lock, note, to_store_error};
use crate::crdt::doc::{DocId, SyncDoc};
use crate::sync::local;
use crate::sync::mqtt::transport::{OutgoingMessage, PublishError, QoS};
use crate::sync::persist;
use crate::sync::wire;

/// The publisher's memory of what it sent on the current connection.
struct Sent {
    /// Each change sent, and when it was last sent.
    changes: HashMap<ChangeHash, Instant>,
    heads: BTreeMap<DocId, Vec<ChangeHash>>,
    /// Per peer: what it lacks and when it is offered again (with backoff).
    reoffers: Reoffers,
    /// The configured resend interval.
    resend: Duration,
    /// How long HQ last took from the broker's PUBACK to heads that acknowledged it.
    hq_ack: Duration,
}

impl Sent {
    fn new(resend: Duration) -> Self {
        Self {
            changes: HashMap::new(),
            heads: BTreeMap::new(),
            reoffers: Reoffers::new(resend),
            resend,
            hq_ack: Duration::ZERO,
        }
    }

    fn note_sent(&mut self, hashes: impl IntoIterator<Item = ChangeHash>) {
        let now = Instant::now();
        self.changes.extend(hashes.into_iter().map(|h| (h, now)));
    }

    /// How long a change sent is left to its peer before it counts as lacking: the resend
    /// interval, or twice HQ's last acknowledgement time if that is longer. A catch-up HQ is
    /// still applying (its first chunks acknowledged, the later ones queued behind them) is
    /// then not sent a second time because HQ is slower than the interval under load.
    fn in_flight_for(&mut self, catch_up: &super::CatchUp) -> Duration {
        if let (Some(published), Some(acked)) = (catch_up.last_published, catch_up.acknowledged)
            && acked > published
        {
            self.hq_ack = acked - published;
        }
        self.resend.max(self.hq_ack * 2)
    }
}

/// The re-offer key of the orders changes waiting for HQ's acknowledgement.
const ORDERS_TO_HQ: &str = "hq (orders)";

pub(super) async fn publish_loop(
    ctx: Arc<Ctx>,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
    changed: Arc<Notify>,
    resend: Duration,
    shutdown: CancellationToken,
) {
    let mut sent = Sent::new(resend);
    let mut tick = tokio::time::interval(resend);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut needs: BTreeSet<DocId> = BTreeSet::new();
        let mut on_tick = false;
        let mut next_epoch: Option<(DocId, u32)> = None;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = changed.notified() => {}
            _ = tick.tick() => on_tick = true,
            next = cmd.recv() => match next {
                None => return,
                Some(Cmd::Connected) => {
                    // HQ's pace is the same after a reconnect: its last ack time is kept.
                    let hq_ack = sent.hq_ack;
                    sent = Sent::new(resend);
                    sent.hq_ack = hq_ack;
                    needs.insert(ctx.stock_id.clone());
                    needs.insert(ctx.catalog_id.clone());
                    needs.insert(ctx.orders_id.clone());
                }
                Some(Cmd::Need(doc)) => { needs.insert(doc); }
                Some(Cmd::NextEpoch(doc, epoch)) => next_epoch = Some((doc, epoch)),
                Some(Cmd::HeadsChanged) => {}
                Some(Cmd::ClaimAgain) => {
                    let claim = ctx.claim.encode();
                    if let Err(e) = publish(&ctx, &ctx.status_topic, claim, true).await {
                        tracing::warn!(error = %e, "cannot publish the status claim again");
                    }
                    continue;
                }
            },
        }
        if !ctx.mqtt.is_connected() {
            continue;
        }
        if let Some((doc, epoch)) = next_epoch
            && let Err(e) = send_epoch_need(&ctx, &doc, epoch).await
        {
            tracing::warn!(error = %e, epoch, "cannot ask HQ for the new epoch; retried on its next heads");
        }
        if let Err(e) = publish_round(&ctx, &mut sent, &needs, on_tick).await
            && !shutdown.is_cancelled()
        {
            tracing::warn!(error = %e, "sync publish round failed; retried later");
        }
    }
}

/// Turns the own movements the hook left in SQLite into changes (netted per SKU, a few for
/// a long backlog; `sync::local::backlog`) and publishes each as soon as it is committed,
/// so they go out in this round. A failure leaves the rest in SQLite for the next round.
/// Once nothing is left and the transport is still connected, sales record their movements
/// in their own commit (`NodeDocs::set_recording_in_commit`) until the receiver sees the
/// connection drop.
async fn record_backlog(ctx: &Ctx, sent: &mut Sent) {
    if record_waiting(ctx, sent).await {
        let mut docs = local::lock(&ctx.docs);
        // Checked under the documents' lock: the receiver turns it off under the same lock
        // after the transport marked itself disconnected, so it cannot stay on offline.
        if ctx.mqtt.is_connected() {
            docs.set_recording_in_commit(true);
        }
    }
}

/// A backlog of at least this many keys is followed by a trim of the heap: its rows, the
/// changes' buffers and their encoding are freed by then, and glibc would keep the pages.
const TRIM_AFTER_KEYS: usize = local::MAX_KEYS_PER_CHANGE;

/// Records what waits; false if that failed or was cut short (the rest stays in SQLite for
/// the next round). The netting reads on a reader connection: the writer, and the sales
/// behind it, wait only for each chunk's commit.
async fn record_waiting(ctx: &Ctx, sent: &mut Sent) -> bool {
    let plan = ctx
        .store
        .read(|conn| local::plan_backlog(conn, local::MAX_KEYS_PER_CHANGE).map_err(to_store_error))
        .await;
    let plan = match plan {
        Ok(Some(plan)) => plan,
        Ok(None) => return true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the own movements waiting for a change");
            return false;
        }
    };
    let began = std::time::Instant::now();
    let (chunks, keys) = (
        plan.chunks.len(),
        plan.chunks.iter().map(|c| c.movements.len()).sum::<usize>(),
    );
    let done = record_and_publish(ctx, sent, plan).await;
    if keys >= TRIM_AFTER_KEYS {
        crate::memory::release_freed();
    }
    tracing::debug!(
        ms = began.elapsed().as_millis(),
        chunks,
        keys,
        done,
        "own movements recorded as changes"
    );
    if done {
        note(&ctx.shared, |t, now| {
            t.recorded.get_or_insert(now);
        });
    }
    done
}

/// Records the plan's chunks one store write each, and publishes each chunk's change while
/// the next one is recorded (and HQ applies it meanwhile), instead of recording everything
/// before sending anything. Only a committed change is published: one published and then
/// lost in a crash would come back as a different change under the same sequence number.
async fn record_and_publish(ctx: &Ctx, sent: &mut Sent, plan: local::BacklogPlan) -> bool {
    let mut pass = plan.pass;
    let last = plan.chunks.len().saturating_sub(1);
    let mut recorded: Option<ChangeHash> = None;
    for (i, chunk) in plan.chunks.into_iter().enumerate() {
        let skus = chunk.skus;
        let (outcome, published) = tokio::join!(
            record_chunk(ctx, pass, chunk, i == last),
            publish_own(ctx, recorded.take())
        );
        sent.note_sent(published);
        match outcome {
            Ok(local::ChunkOutcome::Recorded(hash)) => recorded = hash,
            Ok(local::ChunkOutcome::Stale) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record own movements as a change; retried at the next publish");
                return false;
            }
        }
        pass.done += skus;
    }
    sent.note_sent(publish_own(ctx, recorded).await);
    true
}

async fn record_chunk(
    ctx: &Ctx,
    pass: local::Pass,
    chunk: local::Chunk,
    last: bool,
) -> Result<local::ChunkOutcome, crate::store::StoreError> {
    let docs = ctx.docs.clone();
    ctx.store
        .write(move |conn| {
            crate::sync::node::hook::record_backlog_chunk(conn, &docs, &pass, &chunk, last)
                .map_err(to_store_error)
        })
        .await
}

/// Publishes one own change just recorded; its hash once the broker took it. One that could
/// not be sent stays in the outbox and goes out with the round.
async fn publish_own(ctx: &Ctx, hash: Option<ChangeHash>) -> Option<ChangeHash> {
    let hash = hash?;
    if !ctx.mqtt.is_connected() {
        return None;
    }
    let messages = changes_or_log(local::lock(&ctx.docs).stock().core(), &[hash]);
    match publish_changes(ctx, &ctx.changes_topic, messages).await {
        Ok(()) => Some(hash),
        Err(e) => {
            tracing::debug!(error = %e, "a recorded change goes out with the round instead");
            None
        }
    }
}

async fn publish_round(
    ctx: &Ctx,
    sent: &mut Sent,
    needs: &BTreeSet<DocId>,
    on_tick: bool,
) -> Result<(), PublishError> {
    note(&ctx.shared, |t, now| {
        t.round_began.get_or_insert(now);
    });
    record_backlog(ctx, sent).await;
    let outbox = ctx
        .store
        .read({
            let id = ctx.stock_id.clone();
            let epoch = local::lock(&ctx.docs).epoch();
            move |conn| persist::outbox(conn, &id, epoch).map_err(to_store_error)
        })
        .await
        .unwrap_or_default();
    let fresh: Vec<ChangeHash> = outbox
        .iter()
        .map(|e| e.hash)
        .filter(|h| !sent.changes.contains_key(h))
        .collect();
    let mut messages = Vec::new();
    {
        let docs = local::lock(&ctx.docs);
        let stock = docs.stock().core();
        messages.extend(changes_or_log(stock, &fresh));
        if on_tick {
            for hashes in stalled_peers(ctx, stock, sent) {
                messages.extend(changes_or_log(stock, &hashes));
            }
        }
    }
    publish_changes(ctx, &ctx.changes_topic, messages).await?;
    sent.note_sent(fresh);
    publish_orders_outbox(ctx, sent, on_tick).await?;
    publish_heads(ctx, sent).await?;
    for doc in needs {
        send_need(ctx, doc).await?;
    }
    Ok(())
}

fn changes_or_log(doc: &SyncDoc, hashes: &[ChangeHash]) -> Vec<Vec<u8>> {
    match wire::changes_messages(doc, hashes) {
        Ok(messages) => messages,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode outbox changes");
            Vec::new()
        }
    }
}

/// Own changes that a peer (HQ or another lane) lacked at the previous tick and still lacks:
/// re-offered with backoff (`super::reoffer`), so a lost message or a peer that was away is
/// repaired without resending anything the peer has, and a lane that went away is not sent
/// the same changes every interval forever. Retired lanes are not offered anything.
fn stalled_peers(ctx: &Ctx, stock: &SyncDoc, sent: &mut Sent) -> Vec<Vec<ChangeHash>> {
    let heads = lock(&ctx.shared.peer_heads).clone();
    let retired = lock(&ctx.shared.retired).clone();
    let now = Instant::now();
    let in_flight_for = sent.in_flight_for(&lock(&ctx.shared.catch_up));
    let in_flight = |h: &ChangeHash| {
        sent.changes
            .get(h)
            .is_some_and(|at| now.duration_since(*at) < in_flight_for)
    };
    let mut resend = Vec::new();
    let peers: BTreeSet<&str> = heads
        .keys()
        .filter(|(doc, peer)| *doc == ctx.stock_id && !retired.contains_key(peer))
        .map(|(_, peer)| peer.as_str())
        .collect();
    sent.reoffers
        .retain(|peer| peer == ORDERS_TO_HQ || peers.contains(peer));
    for ((doc, peer), peer_heads) in &heads {
        if *doc != ctx.stock_id || !peers.contains(peer.as_str()) {
            continue;
        }
        let lacking: BTreeSet<ChangeHash> = stock
            .own_changes_not_in(peer_heads)
            .into_iter()
            .filter(|h| !in_flight(h))
            .collect();
        let stalled = sent
            .reoffers
            .due(peer, lacking, ctx.shared.heard_of(peer), now);
        if !stalled.is_empty() {
            tracing::debug!(
                peer,
                changes = stalled.len(),
                "re-offering changes a peer lacks"
            );
            resend.push(stalled);
        }
    }
    *lock(&ctx.shared.reoffers) = sent.reoffers.view(now);
    resend
}

/// Sends the orders changes in the outbox not yet sent on this connection. They stay in the
/// outbox until HQ's heads of the orders document include them; one still waiting a full
/// resend interval later is offered again, with the same backoff as stock re-offers
/// (orders changes are rare, and HQ ignores a change it has).
async fn publish_orders_outbox(
    ctx: &Ctx,
    sent: &mut Sent,
    on_tick: bool,
) -> Result<(), PublishError> {
    let outbox = ctx
        .store
        .read({
            let id = ctx.orders_id.clone();
            let epoch = epoch_of(ctx, &id);
            move |conn| persist::outbox(conn, &id, epoch).map_err(to_store_error)
        })
        .await
        .unwrap_or_default();
    if on_tick {
        let waiting: BTreeSet<ChangeHash> = outbox.iter().map(|e| e.hash).collect();
        let heard = ctx.shared.heard_of(crate::crdt::doc::HQ_WRITER);
        let now = std::time::Instant::now();
        for stalled in sent.reoffers.due(ORDERS_TO_HQ, waiting, heard, now) {
            sent.changes.remove(&stalled);
        }
    }
    let fresh: Vec<ChangeHash> = outbox
        .iter()
        .map(|e| e.hash)
        .filter(|h| !sent.changes.contains_key(h))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let messages = changes_or_log(local::lock(&ctx.docs).orders().core(), &fresh);
    publish_changes(ctx, &ctx.orders_changes_topic, messages).await?;
    sent.note_sent(fresh);
    Ok(())
}

async fn publish_heads(ctx: &Ctx, sent: &mut Sent) -> Result<(), PublishError> {
    let current: Vec<(DocId, Vec<ChangeHash>, Vec<u8>)> = {
        let docs = local::lock(&ctx.docs);
        [&ctx.stock_id, &ctx.catalog_id, &ctx.orders_id]
            .into_iter()
            .filter_map(|id| {
                let (epoch, heads) = (docs.epoch_of(id)?, docs.heads_of(id)?);
                let encoded = wire::heads_message_of(id, epoch, &heads).encode().ok()?;
                Some((id.clone(), heads, encoded))
            })
            .collect()
    };
    for (doc, heads, payload) in current {
        if sent.heads.get(&doc) == Some(&heads) {
            continue;
        }
        let Some(topic) = ctx.heads_topics.get(&doc) else {
            continue;
        };
        publish(ctx, topic, payload, true).await?;
        sent.heads.insert(doc, heads);
    }
    Ok(())
}

async fn send_need(ctx: &Ctx, doc: &DocId) -> Result<(), PublishError> {
    let reply_to = ctx.topics.response(&ctx.scope, &ctx.me).to_string();
    let payload = {
        let docs = local::lock(&ctx.docs);
        let (Some(epoch), Some(heads)) = (docs.epoch_of(doc), docs.heads_of(doc)) else {
            return Ok(());
        };
        wire::need_message_of(doc, epoch, &heads, &reply_to).encode()
    };
    let Ok(payload) = payload else {
        return Ok(());
    };
    let topic = ctx.topics.request(&ctx.scope, &ctx.me).to_string();
    let mut message = OutgoingMessage::new(topic, payload, QoS::AtLeastOnce);
    message.response_topic = Some(reply_to);
    send(ctx, message).await
}

/// Asks HQ for epoch `epoch` of `doc` from its deterministic genesis.
async fn send_epoch_need(ctx: &Ctx, doc: &DocId, epoch: u32) -> Result<(), PublishError> {
    let reply_to = ctx.topics.response(&ctx.scope, &ctx.me).to_string();
    let Ok(genesis) = SyncDoc::genesis(doc, epoch, ctx.writer.clone()) else {
        return Ok(());
    };
    let Ok(payload) = wire::need_message(&genesis, &reply_to).encode() else {
        return Ok(());
    };
    let topic = ctx.topics.request(&ctx.scope, &ctx.me).to_string();
    let mut message = OutgoingMessage::new(topic, payload, QoS::AtLeastOnce);
    message.response_topic = Some(reply_to);
    send(ctx, message).await
}

/// Publishes change messages in order without waiting for one's PUBACK before sending the
/// next: a catch-up of several messages then reaches HQ back to back, and HQ's receive loop
/// applies what queued up as one batch, instead of one message per round trip. The order
/// holds: each publish takes its permit and is queued on its first poll, in turn. If one
/// fails, the round fails and none of them counts as sent (all are sent again).
async fn publish_changes(
    ctx: &Ctx,
    topic: &str,
    payloads: Vec<Vec<u8>>,
) -> Result<(), PublishError> {
    if payloads.is_empty() {
        return Ok(());
    }
    let sends = payloads
        .into_iter()
        .map(|payload| publish(ctx, topic, payload, false));
    futures_util::future::try_join_all(sends).await?;
    if topic == ctx.changes_topic {
        note(&ctx.shared, |t, now| {
            t.first_published.get_or_insert(now);
            t.last_published = Some(now);
        });
    }
    Ok(())
}

async fn publish(
    ctx: &Ctx,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> Result<(), PublishError> {
    let mut message = OutgoingMessage::new(topic, payload, QoS::AtLeastOnce);
    message.retain = retain;
    send(ctx, message).await
}

async fn send(ctx: &Ctx, message: OutgoingMessage) -> Result<(), PublishError> {
    let size = message.payload.len();
    let topic = message.topic.clone();
    match ctx.mqtt.publish_message(message).await {
        Ok(_) => {
            ctx.shared.metrics.count_out(size);
            ctx.shared
                .publish_denied
                .store(false, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Err(PublishError::Denied) => {
            ctx.shared
                .metrics
                .denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx.shared
                .publish_denied
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                topic,
                "broker denied the publish (PUBACK 135): check this store's certificate and the broker ACL"
            );
            Err(PublishError::Denied)
        }
        Err(e) => Err(e),
    }
}
