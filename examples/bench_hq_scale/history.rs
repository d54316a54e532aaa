//! Per-change cost at HQ as one store's history grows: HQ's state (`HqState`, in this
//! process, on SQLite or PostgreSQL) is given a store's history of commits of 100 movements
//! over 10,000 SKUs (as bundles, the way a catching-up store sends it), then 200 single
//! 3-line changes are timed one at a time (check, apply, store, stock rows, heads). With
//! `--history-doc orders`, the same for a store's orders document
//! ([`per_orders_change_cost`]).

use std::time::{Duration, Instant};

use automerge::ChangeHash;
use storenode::crdt::doc::{DocId, DocKind, WriterId};
use storenode::crdt::loyalty::LoyaltyField;
use storenode::crdt::orders::{OrderFacts, OrdersDoc};
use storenode::crdt::stock::{Movement, StockDoc};
use storenode::domain::orders::{Delivery, OrderStatus};
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

/// The topic a lane of `store` publishes its changes of `kind` on, in the bench's tenant.
fn changes_topic(store: &str, kind: DocKind, writer: &WriterId) -> BenchResult<String> {
    Ok(TopicSpace::new(Id::new("hist")?)
        .changes(
            &Scope::store(Id::new(store)?)?,
            &kind_id(kind)?,
            &Id::new(writer.as_str())?,
        )
        .to_string())
}

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
    let topic = changes_topic("h1", DocKind::Stock, &writer)?;
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

/// Members whose cards the orders history earns points for.
const MEMBERS: usize = 2_000;

/// Per-change cost of a store's *orders* document at HQ as its history grows: one lane
/// writes what a day of trading puts there (mostly points earned at sales with a card, one
/// change each; every tenth change an order taken at the till, every tenth its collection),
/// sent to HQ as bundles; then 200 single changes, each the points of one sale, are timed
/// one at a time (check, apply, store, the order index, the coupon and loyalty rows, and
/// what HQ does after every orders change: transfers to relay, points to settle, coupon
/// asks to answer). `checkpoints` count the orders document's changes.
pub fn per_orders_change_cost(target: &Target, checkpoints: &[usize]) -> BenchResult<Vec<Cost>> {
    let mut hq = HqState::open_target(target, "hist", 0)?;
    let writer = WriterId::new("o1.lane1")?;
    let mut lane = OrdersDoc::genesis("o1", 0, writer.clone())?;
    let topic = changes_topic("o1", DocKind::Orders, &writer)?;
    let doc = DocId::new("o1", DocKind::Orders)?;
    let mut written = 0usize;
    let mut unsent: Vec<ChangeHash> = Vec::new();
    let mut costs = Vec::new();
    let earn = |member: usize| (format!("CLUB-{member:05}"), LoyaltyField::Earned, 7);
    for &checkpoint in checkpoints {
        while written < checkpoint {
            let at_ms = i64::try_from(written)?;
            let order = format!("{writer}:{}", written / 10);
            let change = match written % 10 {
                3 => lane.create_order(&till_order(&order, &writer, at_ms))?,
                8 => lane.record_status(&order, OrderStatus::Collected, at_ms)?,
                _ => lane.add_loyalty(&[earn(written * 7 % MEMBERS)], at_ms)?,
            };
            written += 1;
            unsent.extend(change.map(|c| c.hash));
            if unsent.len() >= FEED_EVERY || written >= checkpoint {
                for payload in wire::changes_messages(lane.core(), &unsent)? {
                    hq.handle(&topic, &payload)
                        .map_err(|e| format!("HQ refused orders history: {e}"))?;
                }
                unsent.clear();
            }
        }
        let mut times = Vec::with_capacity(TIMED);
        for i in 0..TIMED {
            let change = lane
                .add_loyalty(&[earn(i * 13 % MEMBERS)], i64::try_from(written)?)?
                .ok_or("points earned change the document")?;
            written += 1;
            let payload = SyncMessage::Changes {
                doc: doc.clone(),
                epoch: 0,
                changes: vec![change.bytes],
            }
            .encode()?;
            let started = Instant::now();
            hq.handle(&topic, &payload)
                .map_err(|e| format!("HQ refused an orders change: {e}"))?;
            times.push(started.elapsed());
        }
        times.sort();
        let member = "CLUB-00013";
        let truth = lane.loyalty_of(member).earned();
        let shown = hq.member_balance(member)?.earned;
        if shown != truth {
            return Err(
                format!("HQ shows {shown} points earned by {member}, the store {truth}").into(),
            );
        }
        costs.push(Cost {
            movements: checkpoint,
            p50: times[times.len() / 2],
            p99: times[times.len() * 99 / 100],
        });
    }
    Ok(costs)
}

/// An order taken at the till for collection later (two lines).
fn till_order(order_id: &str, lane: &WriterId, at_ms: i64) -> OrderFacts {
    OrderFacts {
        order_id: order_id.to_owned(),
        channel: "phone".into(),
        created_at_ms: at_ms,
        pickup_code_hash: [7; 32],
        fulfilment: lane.clone(),
        lines: [("SKU-00001".to_owned(), 1), ("SKU-00002".to_owned(), 2)].into(),
        hold_hours: None,
        delivery: Delivery::Collect,
    }
}
