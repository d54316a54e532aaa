//! The systemd watchdog: `WATCHDOG=1` is sent only while the node's main path works.
//!
//! A timer alone would keep pinging from a node whose writer thread is wedged; instead each
//! ping follows a probe that a store read and a (no-op) write through the writer thread
//! both complete within a deadline. When the probe fails the ping is skipped, and after
//! `WatchdogSec` without one systemd kills and restarts the node (`Restart=on-failure`).
//! `STATUS=` tells `systemctl status` what the node is doing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::health::{Component, State};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("store read failed: {0}")]
    Read(crate::store::StoreError),
    #[error("store writer failed: {0}")]
    Write(crate::store::StoreError),
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
}

/// Pings systemd at half the watchdog interval while probes pass. Returns at once when
/// systemd did not ask for a watchdog (`WATCHDOG_USEC` unset, or meant for another pid).
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let interval = timeout / 2;
    // Leaves the other half of the interval for the ping itself to arrive in time.
    let deadline = interval / 2;
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog enabled"
    );
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = String::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let status = match probe(&state, deadline).await {
            Ok(()) => {
                notify(&[sd_notify::NotifyState::Watchdog]);
                status_line(
                    &state.health.snapshot(),
                    &state.config.api.listen.to_string(),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "watchdog probe failed; not pinging systemd");
                format!("unhealthy: {e}")
            }
        };
        if status != last_status {
            notify(&[sd_notify::NotifyState::Status(&status)]);
            last_status = status;
        }
    }
}

/// A read on the reader pool and an empty write through the writer thread's group commit.
pub async fn probe(state: &AppState, deadline: Duration) -> Result<(), ProbeError> {
    let store = &state.store;
    let work = async {
        store
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
            .await
            .map_err(ProbeError::Read)?;
        store.write(|_| Ok(())).await.map_err(ProbeError::Write)
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| ProbeError::Timeout(deadline))?
}

/// One line for `systemctl status`: where the node serves and which components are not ok.
pub fn status_line(
    components: &std::collections::BTreeMap<String, Component>,
    listen: &str,
) -> String {
    let troubled: Vec<String> = components
        .iter()
        .filter(|(_, c)| c.state != State::Ok)
        .map(|(name, c)| format!("{name} {}: {}", state_word(c.state), c.detail))
        .collect();
    if troubled.is_empty() {
        format!("serving on {listen}; all components ok")
    } else {
        format!("serving on {listen}; {}", troubled.join("; "))
    }
}

fn state_word(state: State) -> &'static str {
    match state {
        State::Ok => "ok",
        State::Degraded => "degraded",
        State::Down => "down",
    }
}

/// Sends to systemd's notify socket when there is one (not in a terminal or under tests).
pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn component(state: State, detail: &str) -> Component {
        Component {
            state,
            detail: detail.into(),
            since: "2025-01-01T00:00:00.000Z".into(),
            critical: false,
        }
    }

    #[test]
    fn status_names_troubled_components_only() {
        let mut map = BTreeMap::new();
        map.insert("store".to_string(), component(State::Ok, "open"));
        assert_eq!(
            status_line(&map, "0.0.0.0:8080"),
            "serving on 0.0.0.0:8080; all components ok"
        );
        map.insert(
            "scanner1".to_string(),
            component(State::Degraded, "unplugged"),
        );
        assert_eq!(
            status_line(&map, "0.0.0.0:8080"),
            "serving on 0.0.0.0:8080; scanner1 degraded: unplugged"
        );
    }
}
