//! Prometheus metrics: plain atomics rendered in the text exposition format.
//!
//! A handful of counters and one latency histogram do not justify a metrics framework; each
//! subsystem owns its counters here and `/metrics` renders them with their help text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency histogram with fixed buckets in microseconds.
pub struct Histogram {
    bounds_us: &'static [u64],
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

const LATENCY_BOUNDS_US: &[u64] = &[
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

impl Default for Histogram {
    fn default() -> Self {
        Self {
            bounds_us: LATENCY_BOUNDS_US,
            buckets: LATENCY_BOUNDS_US
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = self.bounds_us.iter().position(|b| us <= *b)
            && let Some(bucket) = self.buckets.get(i)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds_us.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The node's own counters. Subsystems with their own state (devices, sync) render theirs.
#[derive(Default)]
pub struct Metrics {
    pub sales: Counter,
    pub sale_lines: Counter,
    pub negative_stock_sales: Counter,
    pub returns: Counter,
    pub stock_writes: Counter,
    pub order_writes: Counter,
    pub idempotent_replays: Counter,
    pub auth_failures: Counter,
    pub rate_limited: Counter,
    /// `/metrics` and `/readyz` requests refused by their rate limit.
    pub public_rate_limited: Counter,
    /// Wrong pickup codes, and collects refused because of the lockout they caused.
    pub pickup_code_failures: Counter,
    pub pickup_lockouts: Counter,
    pub write_errors: Counter,
    pub writes_refused_disk: Counter,
    pub write_latency: Histogram,
}

pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

pub fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

impl Metrics {
    pub fn render(&self, out: &mut String) {
        counter(
            out,
            "storenode_sales_total",
            "Sales recorded.",
            self.sales.get(),
        );
        counter(
            out,
            "storenode_sale_lines_total",
            "Sale lines recorded.",
            self.sale_lines.get(),
        );
        counter(
            out,
            "storenode_negative_stock_sales_total",
            "Sales that took a SKU below zero on hand.",
            self.negative_stock_sales.get(),
        );
        counter(
            out,
            "storenode_returns_total",
            "Returns recorded.",
            self.returns.get(),
        );
        counter(
            out,
            "storenode_stock_writes_total",
            "Receipts, counts and adjustments recorded.",
            self.stock_writes.get(),
        );
        counter(
            out,
            "storenode_order_writes_total",
            "Click-and-collect order changes recorded.",
            self.order_writes.get(),
        );
        counter(
            out,
            "storenode_idempotent_replays_total",
            "Writes answered from their idempotency key.",
            self.idempotent_replays.get(),
        );
        counter(
            out,
            "storenode_auth_failures_total",
            "Requests refused for a missing or wrong token.",
            self.auth_failures.get(),
        );
        counter(
            out,
            "storenode_rate_limited_total",
            "Requests refused by a terminal's rate limit.",
            self.rate_limited.get(),
        );
        counter(
            out,
            "storenode_public_rate_limited_total",
            "Requests to /metrics and /readyz refused by their rate limit.",
            self.public_rate_limited.get(),
        );
        counter(
            out,
            "storenode_pickup_code_failures_total",
            "Collects refused for a wrong pickup code.",
            self.pickup_code_failures.get(),
        );
        counter(
            out,
            "storenode_pickup_lockouts_total",
            "Collects refused because too many wrong pickup codes were tried for the order or from the terminal.",
            self.pickup_lockouts.get(),
        );
        counter(
            out,
            "storenode_write_errors_total",
            "Writes that failed with a server error.",
            self.write_errors.get(),
        );
        counter(
            out,
            "storenode_writes_refused_disk_total",
            "Writes refused because the disk is full or read-only.",
            self.writes_refused_disk.get(),
        );
        self.write_latency.render(
            out,
            "storenode_write_duration_seconds",
            "Time from request to durable commit of API writes.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(std::time::Duration::from_micros(300));
        h.observe(std::time::Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_count 2"));
    }
}
