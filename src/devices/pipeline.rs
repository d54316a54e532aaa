//! From decoded frames to the POS stream and the store.
//!
//! * A **scan** is interpreted (GS1), its item resolved from the catalog, and published on
//!   the [`EventBus`] *before* it is written: the terminal bound to the scanner must see it
//!   within milliseconds, and the row is only history. The row then joins the next batch.
//! * A **tag presence change** (Enter/Leave from the tracker) needs the store to know the
//!   item and whether the EPC was sold (for exit alerts), so it is published after its
//!   batch is committed; presence changes are rare next to raw reads, a short delay is fine.
//!
//! Writes are batched: the [`Batcher`] collects jobs for [`BATCH_WINDOW`] (or
//! [`MAX_BATCH`] jobs) and commits them with one `Store::write`, so an RFID burst costs one
//! group commit, not one per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::presence::PresenceKind;
use super::status::DeviceRegistry;
use crate::events::{EventBus, LiveEvent};
use crate::gs1::{Epc, Measure, RcnRegion, ScanContent, interpret};
use crate::money::{self, Quantity};
use crate::store::Store;
use crate::store::catalog::Item;
use crate::store::devices::{self as persist, EpcState, ScanRow, TagOutcome, TagRow};

/// How long the batcher waits for more jobs after the first one.
pub const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Most jobs in one write.
pub const MAX_BATCH: usize = 1024;
/// Jobs waiting for the batcher; beyond this, device events are dropped (and logged) rather
/// than blocking a driver, whose port must keep being read.
const QUEUE_DEPTH: usize = 16_384;
/// Scan and tag events older than this are pruned.
const RETENTION: time::Duration = time::Duration::days(30);
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// One unit of work for the batcher.
#[derive(Debug)]
pub enum PersistJob {
    Scan(ScanRow),
    Tag(TagRow),
}

/// Handle used by drivers; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    bus: EventBus,
    region: RcnRegion,
    /// Decimals of the store currency, to turn embedded RCN prices into minor units.
    currency_exponent: u8,
    queue: mpsc::Sender<PersistJob>,
    /// Events dropped because the queue was full, since start.
    dropped: Arc<AtomicU64>,
}

/// What became of one scan (returned for tests and benchmarks).
#[derive(Debug, Clone)]
pub struct ScanOutcome {
    pub content: ScanContent,
    pub item: Option<Item>,
    pub json: Value,
}

impl Pipeline {
    /// A pipeline and the batcher that must be run (see [`Batcher::run`]).
    pub fn new(store: Store, bus: EventBus, region: RcnRegion, currency: &str) -> (Self, Batcher) {
        let (queue, jobs) = mpsc::channel(QUEUE_DEPTH);
        let batcher = Batcher {
            store: store.clone(),
            bus: bus.clone(),
            jobs,
        };
        let pipeline = Self {
            store,
            bus,
            region,
            currency_exponent: crate::money::minor_unit_exponent(currency),
            queue,
            dropped: Arc::default(),
        };
        (pipeline, batcher)
    }

    /// Interprets, resolves, publishes and queues one scan.
    pub async fn handle_scan(&self, device: &Arc<str>, data: &[u8]) -> ScanOutcome {
        let content = interpret(data, self.region);
        let item = self.resolve(&content).await;
        let at = crate::clock::now_utc();
        let json = scan_json(device, &at, &content, item.as_ref(), self.currency_exponent);
        self.bus.publish(LiveEvent {
            kind: "scan",
            device: device.clone(),
            json: json.to_string(),
        });
        let row = ScanRow {
            device: device.to_string(),
            at,
            symbology: content.symbology.clone(),
            raw: content.raw.clone(),
            gtin14: content.gtin14.as_ref().map(|g| g.as_str().to_owned()),
            sku: item.as_ref().map(|i| i.sku.clone()),
            valid: content.valid,
            error: content.error.clone(),
        };
        self.enqueue(PersistJob::Scan(row));
        ScanOutcome {
            content,
            item,
            json,
        }
    }

    /// Queues a presence change; it is published once stored.
    pub fn handle_tag(&self, row: TagRow) {
        self.enqueue(PersistJob::Tag(row));
    }

    fn enqueue(&self, job: PersistJob) {
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Logged at 1, 2, 4, 8, ... drops: visible without flooding the journal.
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "device event queue full; events dropped");
                }
            }
            // Shutting down: the batcher has drained and stopped.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The catalog item of a scan: by the RCN item key for variable-measure codes, else by
    /// GTIN. A store error is logged and treated as "not found": the scan still goes out.
    async fn resolve(&self, content: &ScanContent) -> Option<Item> {
        let key = content
            .rcn
            .as_ref()
            .map(|rcn| &rcn.item_key)
            .or(content.gtin14.as_ref())?
            .as_str()
            .to_owned();
        match self
            .store
            .read(move |conn| persist::item_for_gtin(conn, &key))
            .await
        {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!(error = %e, "item lookup for a scan failed");
                None
            }
        }
    }
}

/// Commits queued device events in batches and publishes the tag events.
pub struct Batcher {
    store: Store,
    bus: EventBus,
    jobs: mpsc::Receiver<PersistJob>,
}

#[derive(Default)]
struct Batch {
    scans: Vec<ScanRow>,
    tags: Vec<TagRow>,
}

impl Batch {
    fn push(&mut self, job: PersistJob) {
        match job {
            PersistJob::Scan(row) => self.scans.push(row),
            PersistJob::Tag(row) => self.tags.push(row),
        }
    }

    fn len(&self) -> usize {
        self.scans.len() + self.tags.len()
    }
}

impl Batcher {
    /// Runs until every [`Pipeline`] handle is dropped (all drivers stopped), writing
    /// what is still queued first.
    pub async fn run(mut self, registry: DeviceRegistry) {
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            let first = tokio::select! {
                _ = prune.tick() => {
                    self.prune().await;
                    continue;
                }
                job = self.jobs.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let batch = self.collect(first).await;
            self.flush(batch, &registry).await;
        }
    }

    async fn collect(&mut self, first: PersistJob) -> Batch {
        let mut batch = Batch::default();
        batch.push(first);
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            tokio::select! {
                job = self.jobs.recv() => match job {
                    Some(job) => batch.push(job),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        batch
    }

    async fn flush(&self, batch: Batch, registry: &DeviceRegistry) {
        let Batch { scans, tags } = batch;
        let written = self
            .store
            .write(move |conn| {
                persist::insert_scans(conn, &scans)?;
                let outcomes = persist::apply_tag_events(conn, &tags)?;
                Ok((tags, outcomes))
            })
            .await;
        match written {
            Ok((tags, outcomes)) => {
                for (row, outcome) in tags.iter().zip(&outcomes) {
                    self.publish_tag(row, outcome, registry);
                }
            }
            Err(e) => tracing::warn!(error = %e, "storing device events failed; batch dropped"),
        }
    }

    fn publish_tag(&self, row: &TagRow, outcome: &TagOutcome, registry: &DeviceRegistry) {
        let device: Arc<str> = Arc::from(row.reader.as_str());
        let json = tag_json(row, outcome);
        if outcome.exit_alert {
            if let Some(status) = registry.get(&row.reader) {
                status.counters.exit_alerts.inc();
            }
            tracing::warn!(
                reader = %row.reader,
                antenna = row.antenna,
                epc = %row.epc.hex(),
                sku = outcome.item.as_ref().map(|i| i.sku.as_str()),
                "unsold item at an exit"
            );
            self.bus.publish(LiveEvent {
                kind: "exit_alert",
                device: device.clone(),
                json: json.to_string(),
            });
        }
        self.bus.publish(LiveEvent {
            kind: "tag",
            device,
            json: json.to_string(),
        });
    }

    async fn prune(&self) {
        let cutoff = utc_string(time::OffsetDateTime::now_utc() - RETENTION);
        match self
            .store
            .write(move |conn| persist::prune_events(conn, &cutoff))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "pruned old scan and tag events"),
            Err(e) => tracing::warn!(error = %e, "pruning device events failed"),
        }
    }
}

/// Same format as [`crate::clock::now_utc`], so `at` columns compare as text.
fn utc_string(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

fn item_json(item: &Item) -> Value {
    json!({
        "sku": item.sku, "name": item.name, "price_minor": item.price_minor,
        "currency": item.currency, "variable_measure": item.variable_measure,
    })
}

/// The amount a variable-measure scan stands for, in minor units: the embedded price, or
/// the item's price per kilogram (or piece) times the embedded weight (or count).
fn measure_amount(measure: &Measure, item: Option<&Item>, exponent: u8) -> Result<i64, String> {
    match measure {
        Measure::Price { .. } => match measure.price_minor_units(exponent) {
            Some(result) => result.map_err(|e| e.to_string()),
            None => Err("not a price".into()),
        },
        Measure::WeightGrams(grams) => {
            let item = item.ok_or("item unknown: no price per kilogram")?;
            money::line_amount(item.price_minor, Quantity::Grams(*grams)).map_err(|e| e.to_string())
        }
        Measure::Count(count) => {
            let item = item.ok_or("item unknown: no unit price")?;
            money::line_amount(item.price_minor, Quantity::Pieces(*count))
                .map_err(|e| e.to_string())
        }
    }
}

/// The live event of a scan, as SSE clients receive it.
pub fn scan_json(
    device: &str,
    at: &str,
    content: &ScanContent,
    item: Option<&Item>,
    currency_exponent: u8,
) -> Value {
    let mut out = json!({
        "device": device,
        "at": at,
        "symbology": content.symbology,
        "raw": content.raw,
        "gtin14": content.gtin14,
        "valid": content.valid,
        "ai": content.ai,
        "item": item.map(item_json),
    });
    if let Some(error) = &content.error {
        out["error"] = json!(error);
    }
    if let Some(rcn) = &content.rcn {
        out["item_key"] = json!(rcn.item_key);
        out["measure"] = json!(rcn.measure);
        match measure_amount(&rcn.measure, item, currency_exponent) {
            Ok(amount) => out["amount_minor"] = json!(amount),
            Err(reason) => out["amount_error"] = json!(reason),
        }
    }
    out
}

/// The live event of a tag presence change.
pub fn tag_json(row: &TagRow, outcome: &TagOutcome) -> Value {
    let kind = match row.kind {
        PresenceKind::Enter => "enter",
        PresenceKind::Leave => "leave",
    };
    let mut out = json!({
        "device": row.reader,
        "antenna": row.antenna,
        "at": row.at,
        "event": kind,
        "epc": row.epc.hex(),
        "scheme": row.epc.scheme_name(),
        "known": !matches!(row.epc, Epc::Unknown { .. }),
        "rssi": row.rssi,
        "reads": row.reads,
        "state": outcome.state.as_str(),
        "sold": outcome.state == EpcState::Sold,
        "exit": row.exit,
        "item": outcome.item.as_ref().map(item_json),
    });
    if let Some(gtin) = row.epc.gtin14() {
        out["gtin14"] = json!(gtin);
    }
    if let Some(uri) = row.epc.pure_identity_uri() {
        out["epc_uri"] = json!(uri);
    }
    if let Epc::Unknown { reason, .. } = &row.epc {
        out["reason"] = json!(reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_json_has_item_and_weighed_amount() {
        let content = interpret(b"2302148210869", RcnRegion::Norway);
        let item = Item {
            sku: "SALMON".into(),
            name: "Salmon".into(),
            price_minor: 20000,
            currency: "NOK".into(),
            tax_class: "reduced".into(),
            variable_measure: true,
            gtins: vec![],
            epc_patterns: Vec::new(),
        };
        let json = scan_json("s0", "t", &content, Some(&item), 2);
        assert_eq!(json["measure"]["weight_grams"], 1086);
        assert_eq!(json["amount_minor"], 21720);
        assert_eq!(json["item"]["sku"], "SALMON");
        assert_eq!(json["item_key"], "02302148200006");
    }

    #[test]
    fn scan_json_reports_bad_data() {
        let content = interpret(b"5901234123458", RcnRegion::None);
        let json = scan_json("s0", "t", &content, None, 2);
        assert_eq!(json["valid"], false);
        assert_eq!(json["error"], "GTIN check digit: expected 7, got 8");
        assert_eq!(json["item"], Value::Null);
    }

    #[test]
    fn embedded_price_becomes_minor_units() {
        let content = interpret(b"2088060112343", RcnRegion::Sweden);
        let json = scan_json("s0", "t", &content, None, 2);
        assert_eq!(json["amount_minor"], 1234);
    }

    #[test]
    fn currency_exponents() {
        assert_eq!(crate::money::minor_unit_exponent("EUR"), 2);
        assert_eq!(crate::money::minor_unit_exponent("JPY"), 0);
        assert_eq!(crate::money::minor_unit_exponent("KWD"), 3);
    }
}
