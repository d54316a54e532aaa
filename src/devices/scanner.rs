//! The barcode scanner driver: reads one port, frames scans, hands them to the pipeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::codec::DecodeStats;
use super::codec::barcode::{BarcodeCodec, BarcodeFraming, BarcodeStats};
use super::pipeline::Pipeline;
use super::port::{DriverError, LogLimiter};
use super::status::{DeviceStatus, StatsDelta};

/// With neither suffix nor STX/ETX, a pause this long ends a scan (a scanner sends a whole
/// barcode in one burst; 50 ms is several character times even at 9600 baud).
const IDLE_GAP: Duration = Duration::from_millis(50);
const BAD_FRAME_LOG_EVERY: Duration = Duration::from_secs(30);

pub struct ScannerDriver {
    pub device: Arc<str>,
    pub framing: BarcodeFraming,
    pub pipeline: Pipeline,
    pub status: Arc<DeviceStatus>,
}

impl ScannerDriver {
    /// Reads scans until the port fails or `shutdown`; `Ok` only on shutdown.
    pub async fn run<P: AsyncRead + Unpin>(
        &self,
        port: P,
        shutdown: &CancellationToken,
    ) -> Result<(), DriverError> {
        let mut framed = FramedRead::new(port, BarcodeCodec::new(self.framing.clone()));
        let gap_ends_scan = self.framing.suffix.is_empty() && !self.framing.stx_etx;
        let mut stats = StatsDelta::default();
        let mut bad_log = LogLimiter::new(BAD_FRAME_LOG_EVERY);
        loop {
            let pending = !framed.read_buffer().is_empty();
            let frame = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                item = framed.next() => match item {
                    Some(Ok(frame)) => Some(frame),
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(DriverError::Closed),
                },
                _ = tokio::time::sleep(IDLE_GAP), if gap_ends_scan && pending => {
                    take_pending(&mut framed)
                }
            };
            let bad = stats.absorb(
                as_decode_stats(framed.decoder().stats()),
                &self.status.counters,
            );
            if bad > 0 {
                self.log_bad_frames(&mut bad_log, bad);
            }
            if let Some(frame) = frame {
                self.status.counters.scans.inc();
                self.pipeline.handle_scan(&self.device, &frame.data).await;
            }
        }
    }

    fn log_bad_frames(&self, limiter: &mut LogLimiter, bad: u64) {
        if let Some(suppressed) = limiter.allow(Instant::now()) {
            tracing::warn!(
                device = %self.device,
                dropped = bad,
                suppressed,
                "scanner sent overlong or unterminated scans; check prefix/suffix settings"
            );
        }
    }
}

/// Hands the buffered bytes to the codec as one scan (FramedRead lends its codec and its
/// buffer one at a time, so the buffer is moved out and back).
fn take_pending<P>(
    framed: &mut FramedRead<P, BarcodeCodec>,
) -> Option<super::codec::barcode::BarcodeFrame> {
    let mut buf = std::mem::take(framed.read_buffer_mut());
    let frame = framed.decoder_mut().take_pending(&mut buf);
    *framed.read_buffer_mut() = buf;
    frame
}

/// Scanner stats in the shared counter shape: dropped scans count as bad frames.
fn as_decode_stats(stats: BarcodeStats) -> DecodeStats {
    DecodeStats {
        frames: stats.frames,
        bad_checksum: stats.overlong + stats.unterminated,
        garbage_bytes: stats.garbage_bytes,
        ..DecodeStats::default()
    }
}
