//! HQ under systemd (`storenode-hq.service`, `Type=notify`, `WatchdogSec=`): `READY=1` once
//! the documents are loaded and the API serves, a `STATUS=` line, and `WATCHDOG=1` only
//! while HQ's state can be locked within a bound (an ingest loop or a handler stuck on it
//! gets HQ restarted). Without these the unit never became started and was killed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::ops::HqOps;
use super::{SharedHq, lock};

/// Sends to systemd's notify socket when there is one (not in a terminal or under tests).
pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Tells systemd HQ is up.
pub fn ready(listen: std::net::SocketAddr, ops: &HqOps) {
    let status = status_line(listen, ops);
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
}

fn status_line(listen: std::net::SocketAddr, ops: &HqOps) -> String {
    let reasons = ops.health.not_ready_reasons();
    if reasons.is_empty() {
        format!("serving on {listen}; ready")
    } else {
        format!("serving on {listen}; not ready: {}", reasons.join("; "))
    }
}

/// Pings systemd at half the watchdog interval while HQ's state answers; returns at once
/// when systemd asked for no watchdog.
pub async fn watchdog(
    state: SharedHq,
    ops: Arc<HqOps>,
    listen: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let interval = timeout / 2;
    // The other half of the interval is left for the ping itself.
    let deadline = interval / 2;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = String::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = {
            let state = state.clone();
            tokio::time::timeout(
                deadline,
                tokio::task::spawn_blocking(move || drop(lock(&state))),
            )
            .await
        };
        let status = match probe {
            Ok(Ok(())) => {
                notify(&[sd_notify::NotifyState::Watchdog]);
                status_line(listen, &ops)
            }
            _ => {
                tracing::error!(
                    deadline_ms = deadline.as_millis() as u64,
                    "HQ's state did not answer; not pinging systemd"
                );
                format!("unhealthy: HQ's state did not answer within {deadline:?}")
            }
        };
        if status != last_status {
            notify(&[sd_notify::NotifyState::Status(&status)]);
            last_status = status;
        }
    }
}
