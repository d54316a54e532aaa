//! The UHF RFID reader driver: initialises the reader (region, power), reads its firmware
//! info, keeps inventory running, turns raw reads into presence changes, and stops
//! inventory on shutdown.
//!
//! "Never a stuck port": when nothing arrives for a while the driver probes the reader
//! (stop, firmware query, restart inventory); if even the probe gets no answer, the
//! connection is given up and the supervisor reopens the port.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::MissedTickBehavior;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::codec::{ReaderCodec, ReaderCommands, ReaderEvent, ReaderInfo, TagRead};
use super::config::ReaderConfig;
use super::pipeline::Pipeline;
use super::port::{DriverError, LogLimiter};
use super::presence::{PresenceConfig, PresenceEvent, PresenceKind, PresenceTracker, ReadPoint};
use super::status::{DeviceStatus, StatsDelta};
use crate::gs1::{Epc, decode_epc};
use crate::store::devices::TagRow;

/// A write that takes longer means the device (or a pty peer) stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the reply to each initialisation command before sending the next;
/// no reply is not fatal (the liveness check catches a dead reader).
const INIT_REPLY_WAIT: Duration = Duration::from_millis(300);
/// Continuous readers send reads or keep-alives; this much silence triggers a probe.
const CONTINUOUS_SILENCE: Duration = Duration::from_secs(5);
/// Polled readers answer every poll; silence over this many poll periods triggers a probe.
const POLLS_BEFORE_PROBE: u32 = 5;
const MIN_POLLED_SILENCE: Duration = Duration::from_secs(2);
/// After a probe, this long without any frame ends the connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the liveness check runs for continuous readers.
const CONTINUOUS_TICK: Duration = Duration::from_secs(1);
/// How often absent tags are swept into Leave events.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(30);

/// What the liveness check asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    Nothing,
    Probe,
    GiveUp,
}

/// Tracks when the reader was last heard and whether a probe is outstanding. Pure: the
/// caller passes the time.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard: Instant,
    probe_sent: Option<Instant>,
    silence: Duration,
    probe_timeout: Duration,
}

impl Liveness {
    pub fn new(now: Instant, silence: Duration, probe_timeout: Duration) -> Self {
        Self {
            last_heard: now,
            probe_sent: None,
            silence,
            probe_timeout,
        }
    }

    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.probe_sent = None;
    }

    pub fn check(&mut self, now: Instant) -> LinkAction {
        match self.probe_sent {
            Some(sent) if now.saturating_duration_since(sent) >= self.probe_timeout => {
                LinkAction::GiveUp
            }
            Some(_) => LinkAction::Nothing,
            None if now.saturating_duration_since(self.last_heard) >= self.silence => {
                self.probe_sent = Some(now);
                LinkAction::Probe
            }
            None => LinkAction::Nothing,
        }
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }
}

pub struct ReaderDriver {
    device: Arc<str>,
    config: ReaderConfig,
    pipeline: Pipeline,
    status: Arc<DeviceStatus>,
    /// Kept across reconnects: a short unplug must not make every tag enter again.
    tracker: PresenceTracker,
    points: HashMap<u8, ReadPoint>,
    error_log: LogLimiter,
    bad_frame_log: LogLimiter,
}

impl ReaderDriver {
    pub fn new(config: ReaderConfig, pipeline: Pipeline, status: Arc<DeviceStatus>) -> Self {
        let tracker = PresenceTracker::new(PresenceConfig {
            rssi_enter_dbm: config.rssi_enter_dbm,
            absence: config.absence,
            ..PresenceConfig::default()
        });
        Self {
            device: Arc::from(config.id.as_str()),
            config,
            pipeline,
            status,
            tracker,
            points: HashMap::new(),
            error_log: LogLimiter::new(LOG_EVERY),
            bad_frame_log: LogLimiter::new(LOG_EVERY),
        }
    }

    /// Drives the reader until the port fails, it falls silent, or `shutdown`.
    pub async fn run<P>(&mut self, port: P, shutdown: &CancellationToken) -> Result<(), DriverError>
    where
        P: AsyncRead + AsyncWrite + Unpin,
    {
        let protocol = self.config.protocol;
        let (read_half, mut writer) = tokio::io::split(port);
        let mut framed = FramedRead::new(read_half, ReaderCodec::new(protocol));
        let mut stats = StatsDelta::default();
        // Before the first read of this connection refreshes them: tags unseen for `absence`
        // (while the port was down) leave now, so the same tags enter again.
        self.sweep_absent();
        for command in self.init_commands()? {
            write_frame(&mut writer, &command).await?;
            self.await_reply(&mut framed, &mut stats).await?;
        }
        let polling = protocol.needs_polling();
        let (tick_every, silence) = if polling {
            let poll = self.config.poll_interval;
            (poll, (poll * POLLS_BEFORE_PROBE).max(MIN_POLLED_SILENCE))
        } else {
            (CONTINUOUS_TICK, CONTINUOUS_SILENCE)
        };
        let mut link = Liveness::new(Instant::now(), silence, PROBE_TIMEOUT);
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.stop_inventory(&mut writer).await;
                    return Ok(());
                }
                item = framed.next() => {
                    let event = item.ok_or(DriverError::Closed)??;
                    let now = Instant::now();
                    link.heard(now);
                    self.status.heard(now);
                    self.on_event(event);
                    self.absorb_stats(&mut stats, &framed);
                }
                _ = tick.tick() => {
                    if polling {
                        write_frame(&mut writer, &protocol.start_inventory()).await?;
                    }
                    self.check_link(&mut link, &mut writer).await?;
                }
                _ = sweep.tick() => self.sweep_absent(),
            }
        }
    }

    /// Emits Leave for tags unseen for `absence`. Runs while the port is down too: a reader
    /// that cannot read sees no tag, so its tags leave on time (and enter again, with exit
    /// alerts, when it is back) instead of staying present through the outage.
    pub fn sweep_absent(&mut self) {
        for event in self.tracker.sweep(Instant::now()) {
            self.emit(event);
        }
    }

    /// Init sequence, region and power from config, firmware query, start of inventory.
    fn init_commands(&self) -> Result<Vec<Vec<u8>>, DriverError> {
        let protocol = self.config.protocol;
        let mut commands = protocol.init_sequence();
        if let Some(region) = self.config.region {
            commands.push(protocol.set_region(region)?);
        }
        if let Some(power) = self.config.power_centi_dbm {
            commands.push(protocol.set_power(power)?);
        }
        commands.push(protocol.get_firmware());
        commands.push(protocol.start_inventory());
        Ok(commands)
    }

    async fn await_reply<R: AsyncRead + Unpin>(
        &mut self,
        framed: &mut FramedRead<R, ReaderCodec>,
        stats: &mut StatsDelta,
    ) -> Result<(), DriverError> {
        if let Ok(item) = tokio::time::timeout(INIT_REPLY_WAIT, framed.next()).await {
            let event = item.ok_or(DriverError::Closed)??;
            self.status.heard(Instant::now());
            self.on_event(event);
            self.absorb_stats(stats, framed);
        }
        Ok(())
    }

    async fn check_link<W: AsyncWrite + Unpin>(
        &mut self,
        link: &mut Liveness,
        writer: &mut W,
    ) -> Result<(), DriverError> {
        let now = Instant::now();
        match link.check(now) {
            LinkAction::Nothing => Ok(()),
            LinkAction::Probe => {
                tracing::debug!(device = %self.device, "reader quiet; probing");
                for command in self.probe_commands() {
                    write_frame(writer, &command).await?;
                }
                Ok(())
            }
            LinkAction::GiveUp => {
                self.status.counters.silent_timeouts.inc();
                Err(DriverError::Silent(link.silent_for(now)))
            }
        }
    }

    /// Stop (acknowledged even mid-inventory), ask for firmware, start again: any answer
    /// proves the reader alive, and a finished multi-poll is restarted.
    fn probe_commands(&self) -> Vec<Vec<u8>> {
        let protocol = self.config.protocol;
        let mut commands: Vec<Vec<u8>> = protocol.stop_inventory().into_iter().collect();
        commands.push(protocol.get_firmware());
        commands.push(protocol.start_inventory());
        commands
    }

    async fn stop_inventory<W: AsyncWrite + Unpin>(&self, writer: &mut W) {
        if let Some(stop) = self.config.protocol.stop_inventory()
            && let Err(e) = write_frame(writer, &stop).await
        {
            tracing::debug!(device = %self.device, error = %e, "could not stop inventory");
        }
    }

    fn absorb_stats<R>(&mut self, stats: &mut StatsDelta, framed: &FramedRead<R, ReaderCodec>) {
        let bad = stats.absorb(framed.decoder().stats(), &self.status.counters);
        if bad > 0
            && let Some(suppressed) = self.bad_frame_log.allow(Instant::now())
        {
            tracing::warn!(
                device = %self.device,
                dropped = bad,
                suppressed,
                "reader sent corrupt frames (skipped); check baud rate and cabling"
            );
        }
    }

    fn on_event(&mut self, event: ReaderEvent) {
        match event {
            ReaderEvent::Tag(read) => self.on_tag(&read),
            ReaderEvent::Info(info) => self.on_info(&info),
            ReaderEvent::Ack { command } => {
                tracing::trace!(device = %self.device, command, "reader ack");
            }
            ReaderEvent::NoTag | ReaderEvent::KeepAlive => {}
            ReaderEvent::Error { code, message } => {
                self.status.counters.reader_errors.inc();
                self.log_reader_problem("reader reported an error", code, &message);
            }
            ReaderEvent::Warning { code, message } => {
                self.log_reader_problem("reader warning", code, &message);
            }
        }
    }

    fn log_reader_problem(&mut self, what: &str, code: u16, message: &str) {
        if let Some(suppressed) = self.error_log.allow(Instant::now()) {
            tracing::warn!(device = %self.device, code, message, suppressed, "{what}");
        }
    }

    fn on_info(&self, info: &ReaderInfo) {
        self.status.record_info(info);
        tracing::info!(
            device = %self.device,
            firmware = info.firmware.as_deref(),
            hardware = info.hardware.as_deref(),
            power_centi_dbm = info.power_centi_dbm,
            "reader info"
        );
    }

    fn on_tag(&mut self, read: &TagRead) {
        let antennas = &self.config.antennas;
        if !antennas.is_empty() && !antennas.contains(&read.antenna) {
            return;
        }
        self.status.counters.tag_reads.inc();
        let device = &self.device;
        let point = self
            .points
            .entry(read.antenna)
            .or_insert_with(|| ReadPoint::new(device.as_ref(), read.antenna));
        if let Some(event) = self
            .tracker
            .observe(point, &read.epc, read.rssi_dbm, Instant::now())
        {
            self.emit(event);
        }
    }

    fn emit(&self, event: PresenceEvent) {
        let counters = &self.status.counters;
        let epc = decode_epc(&event.epc);
        match event.kind {
            PresenceKind::Enter => {
                counters.tag_enters.inc();
                if let Epc::Unknown { hex, reason } = &epc {
                    counters.unknown_epcs.inc();
                    tracing::debug!(device = %self.device, epc = %hex, reason, "non-GS1 EPC");
                }
            }
            PresenceKind::Leave => counters.tag_leaves.inc(),
        }
        self.pipeline.handle_tag(TagRow {
            reader: event.read_point.reader,
            antenna: event.read_point.antenna,
            at: crate::clock::now_utc(),
            kind: event.kind,
            epc,
            rssi: event.rssi,
            reads: event.reads,
            exit: self.config.exit,
        });
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> Result<(), DriverError> {
    let write = async {
        writer.write_all(frame).await?;
        writer.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| DriverError::WriteTimeout(WRITE_TIMEOUT))??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_probes_then_gives_up_and_recovers_on_reply() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut link = Liveness::new(start, Duration::from_secs(5), Duration::from_secs(3));
        assert_eq!(link.check(at(4)), LinkAction::Nothing);
        assert_eq!(link.check(at(5)), LinkAction::Probe);
        assert_eq!(link.check(at(6)), LinkAction::Nothing, "probe outstanding");
        link.heard(at(7));
        assert_eq!(link.check(at(8)), LinkAction::Nothing);
        assert_eq!(link.check(at(12)), LinkAction::Probe);
        assert_eq!(link.check(at(15)), LinkAction::GiveUp);
    }
}
