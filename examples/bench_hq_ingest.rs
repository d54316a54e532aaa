//! HQ ingest benchmark: the cost of one incoming stock change at HQ as a store's history
//! grows, beside the full recompute HQ used to do per change, measured in the same run.
//! Not a test: it prints a table.
//!
//! ```sh
//! cargo run --release --example bench_hq_ingest              # up to 1,000,000 movements
//! cargo run --release --example bench_hq_ingest -- --quick   # up to 100,000
//! ```
//!
//! One lane of store `s1` writes movements in commits of 100 over 10,000 SKUs, each commit
//! one automerge change, and two HQs apply them as they would from MQTT: one message at a
//! time (`HqState::handle`: check, apply, store, update the changed SKUs' rows), and ten
//! queued messages at a time (`HqState::handle_many`, what HQ's receive loop does when
//! messages queue up). At each checkpoint the median time per change of the last 200
//! changes of each is printed beside the median (of 5) of the old extra per-change work:
//! clone the stock document and recompute every SKU from it (the 10,000 row writes came on
//! top of that).

use std::time::{Duration, Instant};

use storenode::crdt::doc::{DocId, DocKind, WriterId};
use storenode::crdt::stock::{Movement, StockDoc};
use storenode::hq::state::HqState;
use storenode::sync::payload::SyncMessage;
use storenode::sync::service::kind_id;
use storenode::sync::topics::{Id, Scope, TopicSpace};

const SKUS: usize = 10_000;
const MOVEMENTS_PER_COMMIT: usize = 100;
const WINDOW: usize = 200;
const QUEUED: usize = 10;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let checkpoints: &[usize] = if quick {
        &[10_000, 50_000, 100_000]
    } else {
        &[10_000, 100_000, 500_000, 1_000_000]
    };
    let dir = tempfile::tempdir()?;
    let mut hq = HqState::open(&dir.path().join("hq.db"), "t", 0)?;
    let mut hq_queued = HqState::open(&dir.path().join("hq-queued.db"), "t", 0)?;
    let mut queue: Vec<(String, Vec<u8>)> = Vec::new();
    let mut recent_queued: Vec<Duration> = Vec::new();
    let writer = WriterId::new("s1.lane1")?;
    let mut lane = StockDoc::genesis("s1", 0, writer.clone())?;
    let topic = TopicSpace::new(Id::new("t")?)
        .changes(
            &Scope::store(Id::new("s1")?)?,
            &kind_id(DocKind::Stock)?,
            &Id::new(writer.as_str())?,
        )
        .to_string();
    let doc = DocId::new("s1", DocKind::Stock)?;

    println!(
        "| movements at HQ | per change, one message at a time | per change, {QUEUED} queued messages at a time | old extra per change (clone + recompute all SKUs) |"
    );
    println!("|---|---|---|---|");
    let mut written = 0_usize;
    let mut recent: Vec<Duration> = Vec::new();
    let mut next_sku = 0_usize;
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
            let Some(change) = lane.apply_movements(&batch, i64::try_from(written)?)? else {
                continue;
            };
            let payload = SyncMessage::Changes {
                doc: doc.clone(),
                epoch: 0,
                changes: vec![change.bytes],
            }
            .encode()?;
            let started = Instant::now();
            hq.handle(&topic, &payload)
                .map_err(|e| format!("HQ refused a change: {e:?}"))?;
            recent.push(started.elapsed());
            if recent.len() > WINDOW {
                recent.remove(0);
            }
            queue.push((topic.clone(), payload));
            if queue.len() == QUEUED {
                let started = Instant::now();
                let results = hq_queued.handle_many(&queue);
                let per_change = started.elapsed() / u32::try_from(QUEUED)?;
                if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                    return Err(format!("HQ refused a change: {e:?}").into());
                }
                recent_queued.extend(std::iter::repeat_n(per_change, QUEUED));
                if recent_queued.len() > WINDOW {
                    recent_queued.drain(..recent_queued.len() - WINDOW);
                }
                queue.clear();
            }
            written += MOVEMENTS_PER_COMMIT;
        }
        let now = median(&recent);
        let old = median(
            &(0..5)
                .map(|_| {
                    let started = Instant::now();
                    let levels = hq.stock_doc("s1").map(|d| d.stock_levels().len());
                    std::hint::black_box(levels);
                    started.elapsed()
                })
                .collect::<Vec<_>>(),
        );
        println!(
            "| {written} | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(now),
            ms(median(&recent_queued)),
            ms(old),
        );
        let truth = lane.stock_levels().get("SKU-00007").copied();
        for (name, state) in [("one at a time", &mut hq), ("queued", &mut hq_queued)] {
            let shown = state.stock("s1", "SKU-00007")?.map(|s| s.on_hand);
            if shown != truth {
                return Err(format!(
                    "HQ ({name}) shows {shown:?} for SKU-00007, the lane {truth:?}"
                )
                .into());
            }
        }
    }
    Ok(())
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
