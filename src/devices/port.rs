//! Opening serial ports, and the small policies every driver shares: how long to wait
//! before reopening a port, and how often to log a recurring problem.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_serial::{FlowControl, SerialPortBuilderExt, SerialStream};

use super::codec::{CodecError, CommandError};
use super::config::SerialSettings;

/// Why a driver's connection ended (the supervisor then reopens the port).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: tokio_serial::Error,
    },
    #[error("serial I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the port closed (device unplugged?)")]
    Closed,
    #[error("writing to the device did not finish within {0:?}")]
    WriteTimeout(Duration),
    #[error("the reader did not answer for {0:?}, even after a probe")]
    Silent(Duration),
    #[error("cannot build a reader command: {0}")]
    Command(#[from] CommandError),
}

impl From<CodecError> for DriverError {
    fn from(error: CodecError) -> Self {
        match error {
            CodecError::Io(e) => DriverError::Io(e),
        }
    }
}

/// Opens the port with its configured line settings, no flow control (scanners and readers
/// on RS-232 use 3-wire cables).
pub fn open(settings: &SerialSettings) -> Result<SerialStream, DriverError> {
    let path = settings.path.to_string_lossy();
    tokio_serial::new(path, settings.baud)
        .data_bits(settings.data_bits)
        .parity(settings.parity)
        .stop_bits(settings.stop_bits)
        .flow_control(FlowControl::None)
        .open_native_async()
        .map_err(|source| DriverError::Open {
            path: settings.path.clone(),
            source,
        })
}

/// Exponential backoff with jitter between reopen attempts: a missing device is retried
/// quickly at first (a replug takes a second) and then rarely, and jitter keeps several
/// ports on one USB hub from retrying in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The next delay: uniformly in [current/2, current], then current doubles up to max.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let floor = ceiling / 2;
        let spread = ceiling.saturating_sub(floor).as_millis() as u64;
        floor + Duration::from_millis(rng.random_range(0..=spread))
    }

    /// After a connection that worked for a while, start again from `min`.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// Allows one log line per `every`; counts what it suppressed in between, so a noisy line
/// cannot flood the journal but the totals are still reported.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, mentioning `n` occurrences suppressed since the last line.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            self.last = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let first = backoff.next_delay(&mut rng);
        assert!((Duration::from_millis(250)..=Duration::from_millis(500)).contains(&first));
        let delays: Vec<Duration> = (0..20).map(|_| backoff.next_delay(&mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(30)));
        assert!(delays.last().unwrap() >= &Duration::from_secs(15));
        backoff.reset();
        assert!(backoff.next_delay(&mut rng) <= Duration::from_millis(500));
    }

    #[test]
    fn limiter_counts_suppressed_lines() {
        let start = Instant::now();
        let mut limiter = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(limiter.allow(start), Some(0));
        assert_eq!(limiter.allow(start + Duration::from_secs(1)), None);
        assert_eq!(limiter.allow(start + Duration::from_secs(2)), None);
        assert_eq!(limiter.allow(start + Duration::from_secs(11)), Some(2));
    }
}
