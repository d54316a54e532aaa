//! Per-change cost at HQ as one store's history grows: HQ's state (`HqState`, in this
//! process, on SQLite or PostgreSQL) is given a store's history of commits of 100 movements
//! over 10,000 SKUs (as bundles, the way a catching-up store sends it), then 200 single
//! 3-line changes are timed one at a time (check, apply, store, stock rows, heads).

use std::time::{Duration, Instant};

use automerge::ChangeHash;
use storenode::crdt::doc::{DocId, DocKind, WriterId};
use storenode::crdt::stock::{Movement, StockDoc};
use storenode::hq::db::Target;
use storenode::hq::state::HqState;
use storenode::sync::payload::SyncMessage;
use storenode::sync::service::kind_id;
use storenode::sync::topics::{Id, Scope, TopicSpace};
use storenode::sync::wire;

use super::BenchResult;

const SKUS: usize = 10_000;
const MOVEMENTS_PER_COMMIT: usize = 100;
const FEED_EVERY: usize = 200;
const TIMED: usize = 200;

/// Per-change cost at one history size.
pub struct Cost {
    pub movements: usize,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs on the calling (non-async) thread: the PostgreSQL client is a blocking one.
pub fn per_change_cost(target: &Target, checkpoints: &[usize]) -> BenchResult<Vec<Cost>> {
    let mut hq = HqState::open_target(target, "hist", 0)?;
    let writer = WriterId::new("h1.lane1")?;
    let mut lane = StockDoc::genesis("h1", 0, writer.clone())?;
    let topic = TopicSpace::new(Id::new("hist")?)
        .changes(
            &Scope::store(Id::new("h1")?)?,
            &kind_id(DocKind::Stock)?,
            &Id::new(writer.as_str())?,
        )
        .to_string();
    let doc = DocId::new("h1", DocKind::Stock)?;
    let mut written = 0usize;
    let mut next_sku = 0usize;
    let mut unsent: Vec<ChangeHash> = Vec::new();
    let mut costs = Vec::new();
    for &checkpoint in checkpoints {
        while written < checkpoint {
            let batch: Vec<Movement> = (0..MOVEMENTS_PER_COMMIT)
                .map(|i| {
                    next_sku = (next_sku + 7 + i) % SKUS;
                    Movement {
                        sku: format!("SKU-{next_sku:05}"),
                        delta: if i % 3 == 0 { 5 } else { -1 },
                    }
                })
                .collect();
            written += MOVEMENTS_PER_COMMIT;
            if let Some(change) = lane.apply_movements(&batch, i64::try_from(written)?)? {
                unsent.push(change.hash);
            }
            if unsent.len() >= FEED_EVERY || written >= checkpoint {
                for payload in wire::changes_messages(lane.core(), &unsent)? {
                    hq.handle(&topic, &payload)
                        .map_err(|e| format!("HQ refused history: {e}"))?;
                }
                unsent.clear();
            }
        }
        let mut times = Vec::with_capacity(TIMED);
        for i in 0..TIMED {
            let lines: Vec<Movement> = (0..3)
                .map(|j| Movement {
                    sku: format!("SKU-{:05}", (i * 31 + j * 997) % SKUS),
                    delta: -1,
                })
                .collect();
            let change = lane
                .apply_movements(&lines, i64::try_from(written)?)?
                .ok_or("a 3-line sale changes the document")?;
            written += lines.len();
            let payload = SyncMessage::Changes {
                doc: doc.clone(),
                epoch: 0,
                changes: vec![change.bytes],
            }
            .encode()?;
            let started = Instant::now();
            hq.handle(&topic, &payload)
                .map_err(|e| format!("HQ refused a change: {e}"))?;
            times.push(started.elapsed());
        }
        times.sort();
        let truth = lane.stock_levels().get("SKU-00007").copied();
        let shown = hq.stock("h1", "SKU-00007")?.map(|s| s.on_hand);
        if shown != truth {
            return Err(format!("HQ shows {shown:?} for SKU-00007, the store {truth:?}").into());
        }
        costs.push(Cost {
            movements: checkpoint,
            p50: times[times.len() / 2],
            p99: times[times.len() * 99 / 100],
        });
    }
    Ok(costs)
}
