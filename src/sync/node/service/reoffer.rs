//! Re-offers with backoff: when a peer (HQ or another lane) still lacks this lane's changes
//! a resend interval later, they are offered again, but each further attempt waits twice as
//! long, up to a cap, so a lane that went away is not sent the same changes every two
//! seconds forever. Any sign of life from the peer (new heads, a status) or any progress
//! (it now holds something it lacked) starts again from the base interval. A peer that
//! keeps lacking costs one warning, then one line per [`LOG_EVERY`] with a count.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use automerge::ChangeHash;

/// At most one "still lacks" warning per peer per this long.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(600);
/// The longest wait between two re-offers to one peer.
pub(super) const CAP: Duration = Duration::from_secs(60);
/// Re-offers before the first warning: one or two are routine (a lost message).
const WARN_AFTER: u64 = 3;

/// What one peer lacks and when it is offered again.
#[derive(Debug, Clone)]
struct Peer {
    lacking: BTreeSet<ChangeHash>,
    /// The peer's sign-of-life counter at the previous look.
    heard: u64,
    delay: Duration,
    next_at: Instant,
    /// Re-offers since the peer last made progress.
    offers: u64,
    /// Re-offers since the last warning line.
    unlogged: u64,
    logged_at: Option<Instant>,
}

/// A peer as `diag sync` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReofferView {
    pub peer: String,
    /// Own changes the peer lacks.
    pub lacking: usize,
    /// Re-offers since it last made progress.
    pub reoffers: u64,
    /// The wait before the next re-offer.
    pub next_in_ms: u64,
}

/// Per-peer backoff state.
#[derive(Debug, Clone)]
pub(super) struct Reoffers {
    base: Duration,
    cap: Duration,
    peers: BTreeMap<String, Peer>,
}

impl Reoffers {
    pub(super) fn new(base: Duration) -> Self {
        Self {
            base,
            cap: CAP.max(base),
            peers: BTreeMap::new(),
        }
    }

    /// The changes to offer `peer` again now: those it lacked at the previous look and still
    /// lacks, once the peer's current wait is over. `heard` counts the peer's signs of life.
    pub(super) fn due(
        &mut self,
        peer: &str,
        lacking: BTreeSet<ChangeHash>,
        heard: u64,
        now: Instant,
    ) -> Vec<ChangeHash> {
        if lacking.is_empty() {
            self.peers.remove(peer);
            return Vec::new();
        }
        let base = self.base;
        let entry = self.peers.entry(peer.to_owned()).or_insert_with(|| Peer {
            lacking: BTreeSet::new(),
            heard,
            delay: base,
            next_at: now,
            offers: 0,
            unlogged: 0,
            logged_at: None,
        });
        let progress = entry.heard != heard || entry.lacking.iter().any(|h| !lacking.contains(h));
        if progress {
            entry.delay = base;
            entry.next_at = now;
            entry.offers = 0;
        }
        let stalled: Vec<ChangeHash> = lacking.intersection(&entry.lacking).copied().collect();
        entry.lacking = lacking;
        entry.heard = heard;
        if stalled.is_empty() || now < entry.next_at {
            return Vec::new();
        }
        entry.offers += 1;
        entry.unlogged += 1;
        entry.next_at = now + entry.delay;
        entry.delay = (entry.delay * 2).min(self.cap);
        let log_now = entry.offers >= WARN_AFTER
            && entry
                .logged_at
                .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if log_now {
            tracing::warn!(
                peer,
                lacking = entry.lacking.len(),
                reoffers = entry.unlogged,
                next_in_s = entry.delay.as_secs(),
                "a peer still lacks this lane's changes; re-offered {} time(s) since the last line, backing off (a lane gone for good: `storenode lane retire NODE`)",
                entry.unlogged
            );
            entry.logged_at = Some(now);
            entry.unlogged = 0;
        }
        stalled
    }

    /// Keeps only the peers `keep` says yes to (a retired lane, or heads forgotten at an
    /// epoch switch, are not waited on any more).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.peers.retain(|peer, _| keep(peer));
    }

    pub(super) fn view(&self, now: Instant) -> Vec<ReofferView> {
        self.peers
            .iter()
            .map(|(peer, p)| ReofferView {
                peer: peer.clone(),
                lacking: p.lacking.len(),
                reoffers: p.offers,
                next_in_ms: u64::try_from(p.next_at.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> ChangeHash {
        ChangeHash([n; 32])
    }

    fn set(ns: &[u8]) -> BTreeSet<ChangeHash> {
        ns.iter().copied().map(hash).collect()
    }

    const BASE: Duration = Duration::from_secs(2);

    /// The ticks (in base intervals from the start) at which a silent peer is re-offered.
    fn offer_ticks(r: &mut Reoffers, t0: Instant, ticks: u32) -> Vec<u32> {
        (0..ticks)
            .filter(|&i| !r.due("s1.lane2", set(&[1]), 0, t0 + BASE * i).is_empty())
            .collect()
    }

    /// Regression: a lane that went away was re-offered every interval forever.
    #[test]
    fn a_silent_peer_is_re_offered_less_and_less_often_up_to_the_cap() {
        let mut r = Reoffers::new(BASE);
        let t0 = Instant::now();
        // Waits of 1, 2, 4, 8, 16 intervals, then the 60 s cap (30 intervals).
        assert_eq!(
            offer_ticks(&mut r, t0, 130),
            vec![1, 2, 4, 8, 16, 32, 62, 92, 122]
        );
        assert_eq!(r.view(t0 + BASE * 122)[0].next_in_ms, 60_000);
    }

    #[test]
    fn a_sign_of_life_or_progress_starts_again_from_the_base_interval() {
        let mut r = Reoffers::new(BASE);
        let t0 = Instant::now();
        offer_ticks(&mut r, t0, 40);
        let later = t0 + BASE * 40;
        // Heard from the peer: offered at once, and again one interval later.
        assert_eq!(r.due("s1.lane2", set(&[1]), 1, later), vec![hash(1)]);
        assert!(!r.due("s1.lane2", set(&[1]), 1, later + BASE).is_empty());
        // Progress: it now holds 1, lacks a new 2 (sold meanwhile); 2 waits one interval.
        assert!(
            r.due("s1.lane2", set(&[2]), 1, later + BASE * 20)
                .is_empty()
        );
        assert_eq!(
            r.due("s1.lane2", set(&[2]), 1, later + BASE * 21),
            vec![hash(2)]
        );
    }

    #[test]
    fn a_peer_that_lacks_nothing_is_forgotten() {
        let mut r = Reoffers::new(BASE);
        let t0 = Instant::now();
        offer_ticks(&mut r, t0, 10);
        assert!(
            r.due("s1.lane2", BTreeSet::new(), 0, t0 + BASE * 11)
                .is_empty()
        );
        assert!(r.view(t0).is_empty());
    }
}
