//! What HQ refuses of what stores publish: counted by reason, and warned about rate-limited
//! per store and reason, so a store that publishes a flood of bad messages costs a few log
//! lines, not one (or several) per message.
//!
//! Per (store, reason): the first refusal is logged; the next ones within [`WARN_EVERY`]
//! are only counted, and a summary line with how many were not logged follows when the
//! window is over (at the next refusal, or from the periodic [`Rejections::summarise`]).
//! The counters by reason are never rate-limited: `storenode_hq_rejected_total{reason}`.
//!
//! [`RateLimiter`] is pure (time is passed in); [`Rejections`] is owned by a running HQ
//! ([`super::Hq`]) and shared with its receive loop and handlers: no global state.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{Display, Write};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One warning line per store and reason per this window (and a summary after it).
pub const WARN_EVERY: Duration = Duration::from_secs(60);
/// Most (store, reason) pairs tracked at once; beyond, new pairs are counted, not logged.
const MAX_KEYS: usize = 10_000;
/// A store name as logged and tracked: longer topic segments are cut.
const MAX_STORE_CHARS: usize = 64;

/// What to do about one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` occurrences since the last line were not logged.
    Log { suppressed: u64 },
    /// Count it only.
    Quiet,
}

/// Occurrences of `key` that were not logged in a window that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<K> {
    pub key: K,
    pub suppressed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    opened: Instant,
    suppressed: u64,
}

/// One line per key per window. Pure: the caller passes the time.
#[derive(Debug)]
pub struct RateLimiter<K> {
    every: Duration,
    max_keys: usize,
    slots: HashMap<K, Slot>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(every: Duration, max_keys: usize) -> Self {
        Self {
            every,
            max_keys,
            slots: HashMap::new(),
        }
    }

    /// An occurrence of `key` at `now`.
    pub fn hit(&mut self, key: K, now: Instant) -> Verdict {
        if !self.slots.contains_key(&key) && self.slots.len() >= self.max_keys {
            self.forget_idle(now);
            if self.slots.len() >= self.max_keys {
                return Verdict::Quiet;
            }
        }
        match self.slots.get_mut(&key) {
            None => {
                self.slots.insert(
                    key,
                    Slot {
                        opened: now,
                        suppressed: 0,
                    },
                );
                Verdict::Log { suppressed: 0 }
            }
            Some(slot) if now.saturating_duration_since(slot.opened) >= self.every => {
                let suppressed = slot.suppressed;
                *slot = Slot {
                    opened: now,
                    suppressed: 0,
                };
                Verdict::Log { suppressed }
            }
            Some(slot) => {
                slot.suppressed = slot.suppressed.saturating_add(1);
                Verdict::Quiet
            }
        }
    }

    /// Keys whose window is over with occurrences not logged: their summaries (the window
    /// starts again, so the next occurrence is counted into the next summary). Keys whose
    /// window is over without any are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Summary<K>> {
        let mut out = Vec::new();
        for (key, slot) in &mut self.slots {
            if now.saturating_duration_since(slot.opened) >= self.every && slot.suppressed > 0 {
                out.push(Summary {
                    key: key.clone(),
                    suppressed: slot.suppressed,
                });
                *slot = Slot {
                    opened: now,
                    suppressed: 0,
                };
            }
        }
        self.forget_idle(now);
        out
    }

    fn forget_idle(&mut self, now: Instant) {
        let every = self.every;
        self.slots.retain(|_, slot| {
            slot.suppressed > 0 || now.saturating_duration_since(slot.opened) < every
        });
    }

    pub fn tracked(&self) -> usize {
        self.slots.len()
    }
}

type Key = (String, &'static str);

struct Inner {
    limiter: RateLimiter<Key>,
    counts: BTreeMap<&'static str, u64>,
}

/// HQ's refusals of what stores publish: counters by reason and rate-limited warnings.
pub struct Rejections {
    inner: Mutex<Inner>,
}

impl Default for Rejections {
    fn default() -> Self {
        Self::new(WARN_EVERY)
    }
}

impl Rejections {
    pub fn new(every: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                limiter: RateLimiter::new(every, MAX_KEYS),
                counts: BTreeMap::new(),
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a refused message of `topic` and warns about it, rate-limited per store (read
    /// from the topic) and `reason` (a short label, also the metric's).
    pub fn reject(&self, topic: &str, reason: &'static str, detail: &dyn Display) {
        let store = store_of(topic);
        let verdict = {
            let mut inner = self.inner();
            *inner.counts.entry(reason).or_default() += 1;
            inner.limiter.hit((store.clone(), reason), Instant::now())
        };
        match verdict {
            Verdict::Log { suppressed: 0 } => {
                tracing::warn!(store, reason, topic, detail = %detail, "HQ rejected a message of a store");
            }
            Verdict::Log { suppressed } => {
                tracing::warn!(store, reason, topic, detail = %detail, suppressed, "HQ rejected a message of a store (and {suppressed} more like it since the last line, not logged)");
            }
            Verdict::Quiet => {}
        }
    }

    /// Logs the summaries that are due (called periodically by HQ).
    pub fn summarise(&self) {
        let due = self.inner().limiter.due(Instant::now());
        for Summary {
            key: (store, reason),
            suppressed,
        } in due
        {
            tracing::warn!(
                store,
                reason,
                suppressed,
                "HQ rejected {suppressed} more messages of a store like the last one logged (not logged one by one)"
            );
        }
    }

    /// Refusals counted for `reason` since start.
    pub fn count(&self, reason: &str) -> u64 {
        self.inner().counts.get(reason).copied().unwrap_or(0)
    }

    /// Prometheus text of the counters by reason.
    pub fn render(&self, out: &mut String) {
        let name = "storenode_hq_rejected_total";
        let _ = writeln!(
            out,
            "# HELP {name} Messages of stores HQ refused (never applied or stored), by reason.\n# TYPE {name} counter"
        );
        for (reason, n) in &self.inner().counts {
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {n}");
        }
    }
}

/// The store a received topic is about (`storenode/v1/{tenant}/{store}/...`), cut to a
/// bounded length; `?` when the topic has no such segment.
fn store_of(topic: &str) -> String {
    topic
        .split('/')
        .nth(3)
        .filter(|s| !s.is_empty())
        .unwrap_or("?")
        .chars()
        .take(MAX_STORE_CHARS)
        .collect()
}

/// Runs [`Rejections::summarise`] every `every` until shutdown.
pub async fn summarise_every(
    rejections: std::sync::Arc<Rejections>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => rejections.summarise(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_is_logged_the_rest_of_the_window_counted_then_summarised() {
        let mut limiter = RateLimiter::new(MINUTE, 100);
        let t0 = Instant::now();
        let key = ("s1", "payload");
        assert_eq!(limiter.hit(key, t0), Verdict::Log { suppressed: 0 });
        let logged = (1..300)
            .filter(|i| limiter.hit(key, t0 + Duration::from_millis(*i)) != Verdict::Quiet)
            .count();
        assert_eq!(logged, 0, "299 more within the window: none logged");
        assert!(limiter.due(t0 + Duration::from_secs(30)).is_empty());
        assert_eq!(
            limiter.due(t0 + MINUTE),
            vec![Summary {
                key,
                suppressed: 299
            }]
        );
        // The summary restarted the window: nothing more is due, the next is counted.
        assert!(limiter.due(t0 + MINUTE).is_empty());
        assert_eq!(
            limiter.hit(key, t0 + MINUTE + Duration::from_secs(1)),
            Verdict::Quiet
        );
        assert_eq!(
            limiter.hit(key, t0 + MINUTE * 3),
            Verdict::Log { suppressed: 1 },
            "a later one is logged with the count not logged before it"
        );
    }

    #[test]
    fn stores_and_reasons_are_limited_apart() {
        let mut limiter = RateLimiter::new(MINUTE, 100);
        let t0 = Instant::now();
        for key in [("s1", "payload"), ("s2", "payload"), ("s1", "status")] {
            assert_eq!(limiter.hit(key, t0), Verdict::Log { suppressed: 0 });
        }
        assert_eq!(limiter.hit(("s1", "payload"), t0), Verdict::Quiet);
    }

    #[test]
    fn idle_keys_are_forgotten_and_the_number_of_keys_is_bounded() {
        let mut limiter = RateLimiter::new(MINUTE, 2);
        let t0 = Instant::now();
        assert_eq!(limiter.hit(1, t0), Verdict::Log { suppressed: 0 });
        assert_eq!(limiter.hit(2, t0), Verdict::Log { suppressed: 0 });
        assert_eq!(limiter.hit(3, t0), Verdict::Quiet, "full: counted only");
        assert!(limiter.due(t0 + MINUTE).is_empty());
        assert_eq!(limiter.tracked(), 0, "windows over without more: forgotten");
        assert_eq!(limiter.hit(3, t0 + MINUTE), Verdict::Log { suppressed: 0 });
    }

    #[test]
    fn rejections_are_counted_by_reason_whatever_is_logged() {
        let rejections = Rejections::new(MINUTE);
        for _ in 0..300 {
            rejections.reject("storenode/v1/t/s1/changes/stock/s1.l1", "payload", &"x");
        }
        rejections.reject("storenode/v1/t/s2/status/s2.l1", "status", &"x");
        assert_eq!(rejections.count("payload"), 300);
        assert_eq!(rejections.count("status"), 1);
        let mut text = String::new();
        rejections.render(&mut text);
        assert!(text.contains("storenode_hq_rejected_total{reason=\"payload\"} 300"));
        assert_eq!(store_of("storenode/v1/t/s1/x"), "s1");
        assert_eq!(store_of("garbage"), "?");
    }
}
