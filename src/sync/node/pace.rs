//! The rhythm of a side-channel publisher (EPCIS batches, customer data): a round when
//! something new is committed (a nudge) or at least every period, so a lost nudge or a
//! reconnect costs at most one period, until shutdown.

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

pub struct Pace {
    tick: Interval,
}

impl Pace {
    pub fn every(period: Duration) -> Self {
        let mut tick = tokio::time::interval(period);
        // A slow round must not be followed by a burst of catch-up rounds.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { tick }
    }

    /// Waits for a nudge on `wake` or the next period; `false` once `shutdown` is cancelled.
    pub async fn next_round(&mut self, wake: &Notify, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = wake.notified() => true,
            _ = self.tick.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rounds_come_from_nudges_and_the_period_and_end_with_shutdown() {
        let wake = Notify::new();
        let shutdown = CancellationToken::new();
        let mut pace = Pace::every(Duration::from_secs(3600));
        // The first tick of an interval is immediate.
        assert!(pace.next_round(&wake, &shutdown).await);
        wake.notify_one();
        assert!(pace.next_round(&wake, &shutdown).await);
        shutdown.cancel();
        assert!(!pace.next_round(&wake, &shutdown).await);
    }
}
