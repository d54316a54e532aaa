//! `storenode diag simulate scanner|rfid`: a simulated scanner or UHF reader on a serial
//! port, for trying a node (or a POS integration) without hardware.
//!
//! `--port PATH` writes to an existing port (a real one, or one end of a pty pair made with
//! e.g. socat). `--pty-link PATH` creates a pseudo-terminal and points the symlink PATH at
//! its device end: configure the node with `port = PATH`. The RFID simulator also answers
//! the node's commands (init, power, region, firmware, start/stop inventory) and streams
//! reads only while inventory runs, like a real reader.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;

use crate::devices::codec::ReaderProtocol;
use crate::devices::codec::barcode::{BarcodeFraming, FramingError};
use crate::devices::sim::{RfidSim, ScannerSim, sample_epcs};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimDevice {
    Scanner,
    Rfid,
}

impl SimDevice {
    pub fn as_str(self) -> &'static str {
        match self {
            SimDevice::Scanner => "scanner",
            SimDevice::Rfid => "rfid",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// What to simulate.
    #[arg(value_enum)]
    pub device: SimDevice,
    /// Serial port to write to (a real port or one end of a pty pair).
    #[arg(
        long,
        required_unless_present = "pty_link",
        conflicts_with = "pty_link"
    )]
    pub port: Option<PathBuf>,
    /// Create a pseudo-terminal and point this symlink at its device end.
    #[arg(long)]
    pub pty_link: Option<PathBuf>,
    /// Reader protocol (rfid): m100, mercury, chafon, chafon-new.
    #[arg(long, default_value = "m100")]
    pub protocol: String,
    /// Scans per second (scanner) or tag reads per second (rfid), as `N/s` or `N`.
    #[arg(long, default_value = "5/s", value_parser = parse_rate)]
    pub rate: f64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_parser = crate::cli_numbers::seconds_f64)]
    pub seconds: Option<f64>,
    /// Each tag is read this many times per inventory round (rfid), 1 to 1000.
    #[arg(long, default_value_t = 3, value_parser = |t: &str| crate::cli_numbers::integer(t, 1..=1000u32))]
    pub duplicates: u32,
    /// Distinct tags in the field (rfid), 1 to 100000.
    #[arg(long, default_value_t = 20, value_parser = |t: &str| crate::cli_numbers::integer(t, 1..=100_000usize))]
    pub tags: usize,
    /// Share of frames preceded by line noise or sent corrupted, 0..1.
    #[arg(long, default_value_t = 0.0, value_parser = crate::cli_numbers::fraction)]
    pub noise: f64,
    /// Random seed: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Baud rate when opening `--port`.
    #[arg(long, default_value_t = 115_200, value_parser = |t: &str| crate::cli_numbers::integer(t, 50..=4_000_000u32))]
    pub baud: u32,
    /// Scanner record suffix: cr, lf, crlf, tab, none, hex:...
    #[arg(long, default_value = "crlf")]
    pub suffix: String,
    /// Scanner wraps each scan in STX ... ETX.
    #[arg(long)]
    pub stx_etx: bool,
    /// Scanner sends no AIM symbology identifiers.
    #[arg(long)]
    pub no_aim: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: tokio_serial::Error,
    },
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(tokio_serial::Error),
    #[error("cannot link {path} to the pseudo-terminal: {source}")]
    Link {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--protocol: {0}")]
    Protocol(#[from] crate::devices::codec::ProtocolParseError),
    #[error("--suffix: {0}")]
    Framing(#[from] FramingError),
    #[error("serial I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("give --port PATH or --pty-link PATH")]
    NoPort,
}

/// What a simulation wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimReport {
    /// Scans, or tag reads a correct decoder must report.
    pub items: u64,
    pub bytes: u64,
}

/// How often the simulators wake up to write what the rate allows.
const TICK: Duration = Duration::from_millis(5);

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s");
    match number.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        _ => Err(format!("{text:?} is not a positive rate like 20/s")),
    }
}

/// A pty pair whose device end is reachable at `link` (an existing symlink there is
/// replaced). Returns (master, slave): keep the slave open, or reading the master fails
/// with EIO until someone opens the device end.
pub fn pty_at(link: &Path) -> Result<(SerialStream, SerialStream), SimulateError> {
    let (master, slave) = SerialStream::pair().map_err(SimulateError::Pty)?;
    let target = slave.name().ok_or_else(|| {
        SimulateError::Pty(tokio_serial::Error::new(
            tokio_serial::ErrorKind::Unknown,
            "the pty has no device name",
        ))
    })?;
    let link_err = |source| SimulateError::Link {
        path: link.to_path_buf(),
        source,
    };
    if std::fs::symlink_metadata(link).is_ok() {
        std::fs::remove_file(link).map_err(link_err)?;
    }
    std::os::unix::fs::symlink(target, link).map_err(link_err)?;
    Ok((master, slave))
}

/// Writes scans at `rate` per second until `stop` or `duration`.
pub async fn run_scanner<W: AsyncWrite + Unpin>(
    port: &mut W,
    sim: &mut ScannerSim,
    rate: f64,
    duration: Option<Duration>,
    stop: &CancellationToken,
) -> Result<SimReport, SimulateError> {
    let mut report = SimReport::default();
    let mut pacer = Pacer::new(rate, duration);
    let mut tick = tokio::time::interval(TICK);
    while let Some(due) = pacer.due(Instant::now()) {
        for _ in 0..due {
            let chunk = sim.next_chunk();
            port.write_all(&chunk).await?;
            report.items += 1;
            report.bytes += chunk.len() as u64;
        }
        pacer.sent(due);
        port.flush().await?;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
    }
    Ok(report)
}

/// Answers the host and, while inventory runs, streams reads at `rate` per second.
pub async fn run_rfid<P: AsyncRead + AsyncWrite + Unpin>(
    port: P,
    sim: &mut RfidSim,
    rate: f64,
    duration: Option<Duration>,
    stop: &CancellationToken,
) -> Result<SimReport, SimulateError> {
    let (mut host, mut out) = tokio::io::split(port);
    let mut report = SimReport::default();
    let mut pacer = Pacer::new(rate, duration);
    let mut tick = tokio::time::interval(TICK);
    let mut buf = vec![0u8; 1024];
    let reads_before = sim.valid_reads();
    while let Some(due) = pacer.due(Instant::now()) {
        if sim.is_streaming() && due > 0 {
            let before = sim.valid_reads();
            report.bytes += stream_reads(&mut out, sim, due).await?;
            // A round may carry more reads than were due; the pacer evens that out.
            pacer.sent(sim.valid_reads() - before);
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
            read = host.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    break;
                }
                let reply = sim.respond(buf.get(..n).unwrap_or_default());
                out.write_all(&reply).await?;
                report.bytes += reply.len() as u64;
            }
        }
    }
    report.items = sim.valid_reads() - reads_before;
    Ok(report)
}

/// Writes inventory rounds until about `reads` tag reads went out.
async fn stream_reads<W: AsyncWrite + Unpin>(
    out: &mut W,
    sim: &mut RfidSim,
    reads: u64,
) -> Result<u64, SimulateError> {
    let target = sim.valid_reads() + reads;
    let mut bytes = 0;
    while sim.valid_reads() < target {
        let chunk = sim.next_chunk();
        if chunk.is_empty() {
            break;
        }
        out.write_all(&chunk).await?;
        bytes += chunk.len() as u64;
    }
    out.flush().await?;
    Ok(bytes)
}

/// Turns a rate into "how many are due now"; `None` once the duration is over.
struct Pacer {
    start: Instant,
    rate: f64,
    duration: Option<Duration>,
    sent: u64,
}

impl Pacer {
    fn new(rate: f64, duration: Option<Duration>) -> Self {
        Self {
            start: Instant::now(),
            rate,
            duration,
            sent: 0,
        }
    }

    fn due(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.start);
        if self.duration.is_some_and(|d| elapsed >= d) {
            return None;
        }
        let owed = (elapsed.as_secs_f64() * self.rate) as u64;
        Some(owed.saturating_sub(self.sent))
    }

    /// Counts what was actually written (possibly more than was due).
    fn sent(&mut self, items: u64) {
        self.sent += items;
    }
}

/// The CLI: opens the port (or makes the pty), runs until Ctrl-C or `--seconds`.
pub async fn run(args: &SimulateArgs) -> Result<SimReport, SimulateError> {
    let stop = CancellationToken::new();
    let ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    // `_slave` keeps the device end open so the master reads no EIO before a node opens it.
    let (port, _slave) = match (&args.port, &args.pty_link) {
        (Some(path), _) => (open_port(path, args.baud)?, None),
        (None, Some(link)) => {
            let (master, slave) = pty_at(link)?;
            eprintln!("simulated {} at {}", args.device.as_str(), link.display());
            (master, Some(slave))
        }
        (None, None) => return Err(SimulateError::NoPort),
    };
    let duration = args.seconds.map(Duration::from_secs_f64);
    let report = simulate(args, port, duration, &stop).await;
    // The link would dangle once the pty is gone.
    if let Some(link) = &args.pty_link {
        let _ = std::fs::remove_file(link);
    }
    report
}

async fn simulate(
    args: &SimulateArgs,
    port: SerialStream,
    duration: Option<Duration>,
    stop: &CancellationToken,
) -> Result<SimReport, SimulateError> {
    match args.device {
        SimDevice::Scanner => {
            let framing = BarcodeFraming::from_config("", &args.suffix, args.stx_etx, 4096)?;
            let mut sim = ScannerSim::new(framing, !args.no_aim, args.noise, args.seed);
            let mut port = port;
            run_scanner(&mut port, &mut sim, args.rate, duration, stop).await
        }
        SimDevice::Rfid => {
            let protocol: ReaderProtocol = args.protocol.parse()?;
            let tags = sample_epcs(args.tags, args.seed);
            let mut sim = RfidSim::new(protocol, tags, args.duplicates, args.noise, args.seed);
            run_rfid(port, &mut sim, args.rate, duration, stop).await
        }
    }
}

fn open_port(path: &Path, baud: u32) -> Result<SerialStream, SimulateError> {
    tokio_serial::new(path.to_string_lossy(), baud)
        .open_native_async()
        .map_err(|source| SimulateError::Open {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("20/s"), Ok(20.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn pacer_spreads_items_over_time() {
        let mut pacer = Pacer::new(100.0, Some(Duration::from_secs(1)));
        let start = pacer.start;
        assert_eq!(pacer.due(start), Some(0));
        assert_eq!(pacer.due(start + Duration::from_millis(105)), Some(10));
        pacer.sent(10);
        assert_eq!(pacer.due(start + Duration::from_millis(110)), Some(1));
        pacer.sent(5);
        assert_eq!(
            pacer.due(start + Duration::from_millis(140)),
            Some(0),
            "overshoot evened out"
        );
        assert_eq!(pacer.due(start + Duration::from_millis(160)), Some(1));
        assert_eq!(pacer.due(start + Duration::from_secs(1)), None);
    }
}
