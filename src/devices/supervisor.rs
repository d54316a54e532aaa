//! Runs every configured port as its own supervised task: open, drive, and on any failure
//! (missing at start, unplugged, silent) report it and reopen after a backoff, while the
//! rest of the node works on. Device components are never critical: sales go on without
//! a scanner.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_serial::SerialStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{DevicesConfig, SerialSettings};
use super::pipeline::Pipeline;
use super::port::{self, Backoff, DriverError};
use super::reader::ReaderDriver;
use super::scanner::ScannerDriver;
use super::status::{DeviceKind, DeviceRegistry, DeviceStatus};
use crate::events::EventBus;
use crate::health::{Health, State};
use crate::store::Store;

/// A connection that lasted this long was healthy: the next failure retries quickly again.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// How often absent tags are swept while a reader's port is down.
const SWEEP_WHILE_DOWN: Duration = Duration::from_secs(1);
/// How often an open port is checked for a stall.
const STALL_CHECK: Duration = Duration::from_secs(1);

/// What the device layer needs from the node.
pub struct DeviceContext {
    pub store: Store,
    pub bus: EventBus,
    pub health: Arc<Health>,
    /// The store currency, for prices embedded in variable-measure barcodes.
    pub currency: String,
}

enum Driver {
    Scanner(ScannerDriver),
    Reader(Box<ReaderDriver>),
}

impl Driver {
    async fn run(
        &mut self,
        port: SerialStream,
        shutdown: &CancellationToken,
    ) -> Result<(), DriverError> {
        match self {
            Driver::Scanner(driver) => driver.run(port, shutdown).await,
            Driver::Reader(driver) => driver.run(port, shutdown).await,
        }
    }

    /// Runs between connection attempts: a reader's absent tags still leave on time.
    async fn while_down(&mut self) -> Infallible {
        let mut tick = tokio::time::interval(SWEEP_WHILE_DOWN);
        loop {
            tick.tick().await;
            if let Driver::Reader(driver) = self {
                driver.sweep_absent();
            }
        }
    }
}

/// Starts one task per configured device (plus the batcher) on `tasks`; they stop when
/// `shutdown` is cancelled. Returns the registry for metrics and diag.
pub fn start(
    config: &DevicesConfig,
    ctx: DeviceContext,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> DeviceRegistry {
    let mut registry = DeviceRegistry::default();
    if config.is_empty() {
        return registry;
    }
    let (pipeline, batcher) = Pipeline::new(ctx.store, ctx.bus, config.rcn_region(), &ctx.currency);
    let mut supervised = Vec::new();
    for scanner in &config.scanners {
        let status = Arc::new(DeviceStatus::new(
            &scanner.id,
            DeviceKind::Scanner,
            scanner.serial.path.clone(),
        ));
        let driver = Driver::Scanner(ScannerDriver {
            device: Arc::from(scanner.id.as_str()),
            framing: scanner.framing.clone(),
            pipeline: pipeline.clone(),
            status: status.clone(),
        });
        supervised.push((driver, scanner.serial.clone(), status));
    }
    for reader in &config.readers {
        let status = Arc::new(
            DeviceStatus::new(&reader.id, DeviceKind::Reader, reader.serial.path.clone())
                .with_stall_after(reader.stall_after),
        );
        let driver = Driver::Reader(Box::new(ReaderDriver::new(
            reader.clone(),
            pipeline.clone(),
            status.clone(),
        )));
        supervised.push((driver, reader.serial.clone(), status));
    }
    // The batcher ends once every driver (each holding a pipeline clone) has stopped, so
    // the last events of a shutdown are still written.
    drop(pipeline);
    for (driver, serial, status) in supervised {
        registry.add(status.clone());
        let health = ctx.health.clone();
        tasks.spawn(supervise(driver, serial, status, health, shutdown.clone()));
    }
    tasks.spawn(batcher.run(registry.clone()));
    registry
}

async fn supervise(
    mut driver: Driver,
    serial: SerialSettings,
    status: Arc<DeviceStatus>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let component = format!("device:{}", status.id);
    let port_name = serial.path.display().to_string();
    health.set(
        &component,
        State::Down,
        format!("opening {port_name}"),
        false,
    );
    let mut backoff = Backoff::default();
    let mut opened_before = false;
    let mut port_was_missing = true;
    while !shutdown.is_cancelled() {
        match port::open(&serial) {
            Ok(stream) => {
                if opened_before {
                    status.counters.reconnects.inc();
                }
                opened_before = true;
                if port_was_missing {
                    // Silence is counted from here, not from before the port went missing.
                    status.heard(Instant::now());
                    port_was_missing = false;
                }
                status.set_connected(true);
                if !status.is_stalled() {
                    health.set(
                        &component,
                        State::Ok,
                        format!("connected on {port_name}"),
                        false,
                    );
                }
                tracing::info!(device = %status.id, port = %port_name, "device connected");
                let since = Instant::now();
                let result = tokio::select! {
                    result = driver.run(stream, &shutdown) => result,
                    never = watch_stall(&status, &health, &component, &port_name) => match never {},
                };
                status.set_connected(false);
                match result {
                    Ok(()) => break,
                    Err(e) => {
                        // A stalled reader keeps showing as stalled through the reconnects
                        // its silence causes.
                        if !status.is_stalled() {
                            health.set(&component, State::Down, e.to_string(), false);
                        }
                        tracing::warn!(device = %status.id, port = %port_name, error = %e, "device connection lost; reopening");
                        if since.elapsed() >= STABLE_CONNECTION {
                            backoff.reset();
                        }
                    }
                }
            }
            Err(e) => {
                port_was_missing = true;
                status.clear_stall();
                report_unavailable(&health, &component, &status.id, &e);
            }
        }
        let delay = backoff.next_delay(&mut rand::rng());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
            never = driver.while_down() => match never {},
        }
    }
    status.set_connected(false);
}

/// While the port is open: a reader silent for its `stall_secs` shows as stalled (health
/// degraded, metric, WARN once), and as connected again once a frame arrives.
async fn watch_stall(
    status: &DeviceStatus,
    health: &Health,
    component: &str,
    port_name: &str,
) -> Infallible {
    let mut tick = tokio::time::interval(STALL_CHECK);
    loop {
        tick.tick().await;
        let now = Instant::now();
        match status.check_stall(now) {
            Some(true) => {
                let silent_secs = status.silent_for(now).as_secs();
                health.set(
                    component,
                    State::Degraded,
                    format!("stalled: {port_name} is open but nothing arrived for {silent_secs} s"),
                    false,
                );
                tracing::warn!(device = %status.id, port = port_name, silent_secs, "device stalled: port open, no data");
            }
            Some(false) => {
                health.set(
                    component,
                    State::Ok,
                    format!("connected on {port_name}"),
                    false,
                );
                tracing::info!(device = %status.id, port = port_name, "device talks again");
            }
            None => {}
        }
    }
}

/// Logs a missing port once per change of reason, not on every retry.
fn report_unavailable(health: &Health, component: &str, device: &str, error: &DriverError) {
    let detail = error.to_string();
    let changed = health.state(component) != Some(State::Down)
        || health
            .snapshot()
            .get(component)
            .is_none_or(|c| c.detail != detail);
    health.set(component, State::Down, detail, false);
    if changed {
        tracing::warn!(device, error = %error, "device not available; retrying with backoff");
    } else {
        tracing::debug!(device, error = %error, "device still not available");
    }
}
