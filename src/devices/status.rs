//! What each device is doing: connection state, counters for `/metrics`, the reader's
//! firmware for `diag`. One [`DeviceStatus`] per configured port, shared by its driver task
//! and the renderers; plain atomics, no locks on the read path.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::codec::{DecodeStats, ReaderInfo};
use crate::metrics::Counter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Scanner,
    Reader,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Scanner => "scanner",
            DeviceKind::Reader => "reader",
        }
    }
}

/// Per-device counters; every field is a Prometheus counter labelled with the device id.
#[derive(Default)]
pub struct DeviceCounters {
    pub reconnects: Counter,
    pub frames: Counter,
    pub bad_checksums: Counter,
    pub garbage_bytes: Counter,
    pub scans: Counter,
    pub tag_reads: Counter,
    pub tag_enters: Counter,
    pub tag_leaves: Counter,
    pub unknown_epcs: Counter,
    pub exit_alerts: Counter,
    pub reader_errors: Counter,
    pub silent_timeouts: Counter,
}

pub struct DeviceStatus {
    pub id: String,
    pub kind: DeviceKind,
    pub port: PathBuf,
    pub counters: DeviceCounters,
    connected: AtomicBool,
    /// What the reader said about itself at the last connect (diag shows it).
    firmware: Mutex<Option<ReaderInfo>>,
    /// Readers only: an open port silent this long is stalled (scanners are silent between
    /// scans, so they never stall).
    stall_after: Option<Duration>,
    /// The last frame, or the last (re)connect after the port was missing: the start of the
    /// current silence. Kept across the reconnects a silent reader causes.
    last_heard: Mutex<Instant>,
    stalled: AtomicBool,
}

impl DeviceStatus {
    pub fn new(id: &str, kind: DeviceKind, port: PathBuf) -> Self {
        Self {
            id: id.to_owned(),
            kind,
            port,
            counters: DeviceCounters::default(),
            connected: AtomicBool::new(false),
            firmware: Mutex::new(None),
            stall_after: None,
            last_heard: Mutex::new(Instant::now()),
            stalled: AtomicBool::new(false),
        }
    }

    /// This device shows as stalled after `after` of silence on an open port.
    pub fn with_stall_after(mut self, after: Duration) -> Self {
        self.stall_after = Some(after);
        self
    }

    /// A frame arrived (or the port came back after being missing): silence starts again.
    pub fn heard(&self, now: Instant) {
        if let Ok(mut last) = self.last_heard.lock() {
            *last = (*last).max(now);
        }
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        self.last_heard
            .lock()
            .map(|last| now.saturating_duration_since(*last))
            .unwrap_or_default()
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Re-evaluates the stall with the port open; `Some(stalled)` when it changed.
    pub fn check_stall(&self, now: Instant) -> Option<bool> {
        let after = self.stall_after?;
        let stalled = self.silent_for(now) >= after;
        (self.stalled.swap(stalled, Ordering::Relaxed) != stalled).then_some(stalled)
    }

    /// The port is gone: the device is down, not stalled.
    pub fn clear_stall(&self) {
        self.stalled.store(false, Ordering::Relaxed);
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Merges what the reader reported; later answers fill or replace fields.
    pub fn record_info(&self, info: &ReaderInfo) {
        let Ok(mut slot) = self.firmware.lock() else {
            return;
        };
        let merged = slot.get_or_insert_with(ReaderInfo::default);
        merge_info(merged, info);
    }

    pub fn firmware(&self) -> Option<ReaderInfo> {
        self.firmware.lock().ok().and_then(|f| f.clone())
    }
}

fn merge_info(into: &mut ReaderInfo, from: &ReaderInfo) {
    fn take<T: Clone>(into: &mut Option<T>, from: &Option<T>) {
        if from.is_some() {
            into.clone_from(from);
        }
    }
    take(&mut into.firmware, &from.firmware);
    take(&mut into.hardware, &from.hardware);
    take(&mut into.manufacturer, &from.manufacturer);
    take(&mut into.power_centi_dbm, &from.power_centi_dbm);
    take(&mut into.region, &from.region);
    take(&mut into.scan_time_ms, &from.scan_time_ms);
}

/// Turns a codec's cumulative [`DecodeStats`] into counter increments: a codec lives for one
/// connection, the counters for the life of the node.
#[derive(Debug, Default)]
pub struct StatsDelta {
    last: DecodeStats,
}

impl StatsDelta {
    /// Adds what changed since the last call; returns the number of new bad frames
    /// (checksum failures plus oversized headers), for rate-limited logging.
    pub fn absorb(&mut self, now: DecodeStats, counters: &DeviceCounters) -> u64 {
        let frames = now.frames.saturating_sub(self.last.frames);
        let bad = now.bad_checksum.saturating_sub(self.last.bad_checksum)
            + now.oversized.saturating_sub(self.last.oversized);
        let garbage = now.garbage_bytes.saturating_sub(self.last.garbage_bytes);
        counters.frames.add(frames);
        counters.bad_checksums.add(bad);
        counters.garbage_bytes.add(garbage);
        self.last = now;
        bad
    }
}

/// All configured devices, for `/metrics` and health.
#[derive(Default, Clone)]
pub struct DeviceRegistry {
    devices: Vec<Arc<DeviceStatus>>,
}

type CounterField = fn(&DeviceCounters) -> &Counter;

/// (metric suffix, help, field): the rendering table of [`DeviceCounters`].
const COUNTERS: &[(&str, &str, CounterField)] = &[
    (
        "reconnects_total",
        "Times the port was (re)opened after a failure.",
        |c| &c.reconnects,
    ),
    ("frames_total", "Valid frames decoded.", |c| &c.frames),
    (
        "bad_frames_total",
        "Frames dropped for a bad checksum, end marker or length.",
        |c| &c.bad_checksums,
    ),
    (
        "garbage_bytes_total",
        "Bytes skipped while resynchronising.",
        |c| &c.garbage_bytes,
    ),
    ("scans_total", "Barcode scans received.", |c| &c.scans),
    ("tag_reads_total", "Raw RFID tag reads.", |c| &c.tag_reads),
    ("tag_enters_total", "Tags that entered a read point.", |c| {
        &c.tag_enters
    }),
    ("tag_leaves_total", "Tags that left a read point.", |c| {
        &c.tag_leaves
    }),
    (
        "unknown_epcs_total",
        "Entering tags whose EPC is not a decodable GS1 scheme.",
        |c| &c.unknown_epcs,
    ),
    (
        "exit_alerts_total",
        "Unsold tagged items seen at an exit read point.",
        |c| &c.exit_alerts,
    ),
    (
        "reader_errors_total",
        "Error replies from the reader.",
        |c| &c.reader_errors,
    ),
    (
        "silent_timeouts_total",
        "Times the reader stayed silent after a probe and was reconnected.",
        |c| &c.silent_timeouts,
    ),
];

impl DeviceRegistry {
    pub fn add(&mut self, status: Arc<DeviceStatus>) {
        self.devices.push(status);
    }

    pub fn devices(&self) -> &[Arc<DeviceStatus>] {
        &self.devices
    }

    pub fn get(&self, id: &str) -> Option<&Arc<DeviceStatus>> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// Appends the device metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        if self.devices.is_empty() {
            return;
        }
        let name = "storenode_device_connected";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while the device's port is open and talking.\n# TYPE {name} gauge"
        );
        for d in &self.devices {
            let _ = writeln!(
                out,
                "{name}{{device=\"{}\",kind=\"{}\"}} {}",
                d.id,
                d.kind.as_str(),
                u8::from(d.is_connected())
            );
        }
        let name = "storenode_device_stalled";
        let _ = writeln!(
            out,
            "# HELP {name} 1 while a reader's port is open but it sends nothing.\n# TYPE {name} gauge"
        );
        for d in self.devices.iter().filter(|d| d.stall_after.is_some()) {
            let _ = writeln!(
                out,
                "{name}{{device=\"{}\"}} {}",
                d.id,
                u8::from(d.is_stalled())
            );
        }
        for (suffix, help, field) in COUNTERS {
            let name = format!("storenode_device_{suffix}");
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for d in &self.devices {
                let _ = writeln!(
                    out,
                    "{name}{{device=\"{}\"}} {}",
                    d.id,
                    field(&d.counters).get()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_delta_adds_only_the_difference() {
        let counters = DeviceCounters::default();
        let mut delta = StatsDelta::default();
        let stats = DecodeStats {
            frames: 5,
            bad_checksum: 2,
            garbage_bytes: 7,
            ..DecodeStats::default()
        };
        assert_eq!(delta.absorb(stats, &counters), 2);
        assert_eq!(delta.absorb(stats, &counters), 0);
        assert_eq!(counters.frames.get(), 5);
        assert_eq!(counters.garbage_bytes.get(), 7);
    }

    #[test]
    fn render_labels_each_device() {
        let mut registry = DeviceRegistry::default();
        let status = Arc::new(DeviceStatus::new(
            "s0",
            DeviceKind::Scanner,
            "/dev/x".into(),
        ));
        status.set_connected(true);
        status.counters.scans.add(3);
        registry.add(status);
        let mut out = String::new();
        registry.render(&mut out);
        assert!(
            out.contains("storenode_device_connected{device=\"s0\",kind=\"scanner\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("storenode_device_scans_total{device=\"s0\"} 3"),
            "{out}"
        );
    }

    #[test]
    fn a_reader_stalls_after_its_silence_and_recovers_on_a_frame() {
        let status = DeviceStatus::new("r", DeviceKind::Reader, "/dev/x".into())
            .with_stall_after(Duration::from_secs(10));
        let t0 = Instant::now();
        status.heard(t0);
        assert_eq!(status.check_stall(t0 + Duration::from_secs(9)), None);
        assert_eq!(status.check_stall(t0 + Duration::from_secs(10)), Some(true));
        assert_eq!(status.check_stall(t0 + Duration::from_secs(11)), None);
        assert!(status.is_stalled());
        status.heard(t0 + Duration::from_secs(12));
        assert_eq!(
            status.check_stall(t0 + Duration::from_secs(12)),
            Some(false)
        );
        let scanner = DeviceStatus::new("s", DeviceKind::Scanner, "/dev/y".into());
        assert_eq!(scanner.check_stall(t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn reader_info_merges() {
        let status = DeviceStatus::new("r", DeviceKind::Reader, "/dev/x".into());
        status.record_info(&ReaderInfo {
            firmware: Some("1.0".into()),
            ..ReaderInfo::default()
        });
        status.record_info(&ReaderInfo {
            power_centi_dbm: Some(2600),
            ..ReaderInfo::default()
        });
        let info = status.firmware().unwrap();
        assert_eq!(info.firmware.as_deref(), Some("1.0"));
        assert_eq!(info.power_centi_dbm, Some(2600));
    }
}
