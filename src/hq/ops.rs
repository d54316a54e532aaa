//! What an operator watches of a running HQ: its readiness (database, broker, documents: the
//! store's [`Health`] registry, one component each) and its Prometheus figures (messages in,
//! apply latency, lag per store, queue depth, rejections by reason). The ingest loop
//! (`super::receive`) records; `/readyz` and `/metrics` (`super::http::ops`) read.

use super::db::Target;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::health::{Health, State};
use crate::http_shared::limits::PublicLimits;
use crate::metrics::{Counter, Histogram, counter, gauge};
use crate::sync::topics::{self, Scope, Topic};
use crate::sync::wire::WireMetrics;

use super::state::Rejected;

/// Health component names: each critical (down means `/readyz` answers 503).
pub const DATABASE: &str = "database";
pub const BROKER: &str = "broker";
pub const DOCUMENTS: &str = "documents";

/// HQ's documents in memory against its bound (`[hq] documents_in_memory`), as the state
/// last published them between two operations.
#[derive(Debug, Default)]
pub struct DocumentGauges {
    pub in_memory: AtomicU64,
    pub evictions: AtomicU64,
    pub reloads: AtomicU64,
}

impl DocumentGauges {
    fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            out,
            "storenode_hq_documents_in_memory",
            "Store documents HQ holds in memory (bounded by [hq] documents_in_memory).",
            i64::try_from(get(&self.in_memory)).unwrap_or(i64::MAX),
        );
        counter(
            out,
            "storenode_hq_document_evictions_total",
            "Documents dropped from memory past the bound (they reload from the database).",
            get(&self.evictions),
        );
        counter(
            out,
            "storenode_hq_document_loads_total",
            "Documents loaded whole from the database (first use, or after an eviction).",
            get(&self.reloads),
        );
    }
}

/// HQ's figures and readiness, shared by the ingest loop and the HTTP API.
pub struct HqOps {
    pub health: Health,
    pub wire: Arc<WireMetrics>,
    /// Time to apply one batch of stores' messages (lock, apply, store).
    pub apply_latency: Histogram,
    /// Messages received and not yet taken by the ingest loop.
    queue_depth: AtomicU64,
    /// What HQ refused of what stores published (sync, EPCIS, customer data), by reason,
    /// with its rate-limited warnings: one count for the metric and the log.
    pub rejections: Arc<super::warnings::Rejections>,
    /// When HQ last applied a change of each store.
    last_applied: Mutex<BTreeMap<String, SystemTime>>,
    /// HQ's database, reached on a connection of its own by the readiness check.
    database: Target,
    started: std::time::Instant,
    /// Rates of `/readyz` and `/metrics`, which need no token.
    pub limits: PublicLimits,
    pub public_rate_limited: Counter,
    /// Documents in memory, evictions and loads (written by the state, see `HqState::trim`).
    pub documents: Arc<DocumentGauges>,
}

impl HqOps {
    /// Not ready until the broker connects and the documents are loaded.
    pub fn new(database: Target, wire: Arc<WireMetrics>) -> Self {
        let health = Health::default();
        health.set(BROKER, State::Down, "not connected yet", true);
        health.set(DOCUMENTS, State::Down, "loading", true);
        health.set(DATABASE, State::Down, "not checked yet", true);
        Self {
            health,
            wire,
            apply_latency: Histogram::default(),
            queue_depth: AtomicU64::new(0),
            rejections: Arc::default(),
            last_applied: Mutex::default(),
            database,
            started: std::time::Instant::now(),
            limits: PublicLimits::default(),
            public_rate_limited: Counter::default(),
            documents: Arc::default(),
        }
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .store(u64::try_from(depth).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A sync message refused by HQ's checks on `topic`: counted by reason, warned about
    /// at a bounded rate.
    pub fn reject(&self, topic: &str, why: &Rejected) {
        self.wire.reject();
        self.rejections.reject(topic, why.reason(), why);
    }

    /// A message applied: a store's change moves its last-applied time.
    pub fn applied(&self, topic: &str) {
        if let Ok(Topic::Changes {
            scope: Scope::Store(store),
            ..
        }) = topics::parse(topic)
        {
            self.last_applied
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(store.to_string(), SystemTime::now());
        }
    }

    /// Checks that HQ's database answers a query (on a connection of its own, so a long
    /// ingest batch holding HQ's lock does not make HQ look down), and records it.
    pub fn check_database(&self) {
        match crate::hq::db::ping(&self.database) {
            Ok(()) => self.health.set(DATABASE, State::Ok, "answers", true),
            Err(e) => self.health.set(DATABASE, State::Down, e, true),
        };
    }

    /// The Prometheus text of HQ.
    pub fn render(&self, out: &mut String) {
        let w = &self.wire;
        counter(
            out,
            "storenode_hq_messages_in_total",
            "Sync messages received from stores.",
            WireMetrics::get(&w.messages_in),
        );
        counter(
            out,
            "storenode_hq_bytes_in_total",
            "Sync payload bytes received.",
            WireMetrics::get(&w.bytes_in),
        );
        counter(
            out,
            "storenode_hq_messages_out_total",
            "Messages HQ published (heads, answers, catalog, orders).",
            WireMetrics::get(&w.messages_out),
        );
        self.render_rejected(out);
        counter(
            out,
            "storenode_hq_public_rate_limited_total",
            "Requests to /metrics and /readyz refused by their rate limit.",
            self.public_rate_limited.get(),
        );
        self.apply_latency.render(
            out,
            "storenode_hq_apply_duration_seconds",
            "Time to apply one batch of stores' messages (lock, apply, store).",
        );
        gauge(
            out,
            "storenode_hq_incoming_queue",
            "Messages received from the broker and not yet taken by the ingest loop.",
            i64::try_from(self.queue_depth.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        );
        self.render_lag(out);
        self.documents.render(out);
        let ready = i64::from(self.health.ready());
        gauge(
            out,
            "storenode_hq_ready",
            "1 when /readyz answers 200.",
            ready,
        );
        gauge(
            out,
            "storenode_hq_uptime_seconds",
            "Seconds since HQ started.",
            i64::try_from(self.started.elapsed().as_secs()).unwrap_or(i64::MAX),
        );
    }

    fn render_rejected(&self, out: &mut String) {
        self.rejections.render(out);
    }

    fn render_lag(&self, out: &mut String) {
        let name = "storenode_hq_store_lag_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Seconds since HQ last applied a change of the store (since HQ started).\n# TYPE {name} gauge"
        );
        let now = SystemTime::now();
        let map = self
            .last_applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (store, at) in map.iter() {
            let lag = now.duration_since(*at).unwrap_or(Duration::ZERO);
            let _ = writeln!(out, "{name}{{store=\"{store}\"}} {:.3}", lag.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_count_by_reason_and_lag_is_per_store() {
        let dir = tempfile::tempdir().unwrap();
        let ops = HqOps::new(Target::Sqlite(dir.path().join("hq.db")), Arc::default());
        let on = "storenode/v1/acme/s1/changes/stock/s1.lane1";
        ops.reject(on, &Rejected::TooLarge(1 << 20));
        ops.reject(on, &Rejected::Unexpected);
        ops.reject(on, &Rejected::Unexpected);
        let space = topics::TopicSpace::new(topics::Id::new("acme").unwrap());
        let s1 = topics::Id::new("s1").unwrap();
        let stock = topics::Id::new("stock").unwrap();
        let topic = space.changes(
            &Scope::Store(s1),
            &stock,
            &topics::Id::new("s1.lane1").unwrap(),
        );
        ops.applied(&topic.to_string());
        let mut out = String::new();
        ops.render(&mut out);
        assert!(
            out.contains("storenode_hq_rejected_total{reason=\"unexpected\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("storenode_hq_rejected_total{reason=\"too_large\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("storenode_hq_store_lag_seconds{store=\"s1\"}"),
            "{out}"
        );
        assert!(out.contains("storenode_hq_ready 0"), "{out}");
    }

    #[test]
    fn a_missing_database_is_not_ready_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let ops = HqOps::new(
            Target::Sqlite(dir.path().join("nope").join("hq.db")),
            Arc::default(),
        );
        ops.check_database();
        let reasons = ops.health.not_ready_reasons().join("; ");
        assert!(reasons.contains("database: cannot open"), "{reasons}");
    }
}
