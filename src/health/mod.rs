//! Component health for `/readyz`, metrics and `diag status`: each subsystem (a serial port,
//! the MQTT link, the store) reports its own state here. [`watch`] measures what no
//! component reports by itself (a write probe, free disk, certificate, clock); [`vitals`]
//! holds the rules and figures.

pub mod vitals;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    /// Working around a problem (a device unplugged, HQ unreachable): sales go on.
    Degraded,
    /// Not working; if `critical`, the node is not ready.
    Down,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Component {
    pub state: State,
    pub detail: String,
    pub since: String,
    /// A critical component down makes `/readyz` answer 503.
    pub critical: bool,
}

/// `GET /healthz` of the store and HQ.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Alive {
    /// Always `ok`.
    pub status: &'static str,
}

/// `GET /readyz` of the store and HQ: ready when no critical component is down.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Why the service is not ready, each naming its component (empty when ready).
    pub reasons: Vec<String>,
    pub components: BTreeMap<String, Component>,
}

#[derive(Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, Component>>,
    vitals: Mutex<vitals::Vitals>,
    last_probe: Mutex<Option<Instant>>,
}

impl Health {
    /// Records a component's state; returns true when its state changed (callers log then,
    /// so a persisting problem is logged once, not on every request).
    pub fn set(&self, name: &str, state: State, detail: impl Into<String>, critical: bool) -> bool {
        let Ok(mut map) = self.components.lock() else {
            return false;
        };
        let detail = detail.into();
        let previous = map.get(name).map(|c| (c.state, c.detail == detail));
        if previous != Some((state, true)) {
            let since = crate::clock::now_utc();
            map.insert(
                name.to_string(),
                Component {
                    state,
                    detail,
                    since,
                    critical,
                },
            );
        }
        previous.map(|(s, _)| s) != Some(state)
    }

    pub fn state(&self, name: &str) -> Option<State> {
        self.components.lock().ok()?.get(name).map(|c| c.state)
    }

    pub fn snapshot(&self) -> BTreeMap<String, Component> {
        self.components
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    pub fn vitals(&self) -> vitals::Vitals {
        self.vitals.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn update_vitals(&self, change: impl FnOnce(&mut vitals::Vitals)) {
        if let Ok(mut v) = self.vitals.lock() {
            change(&mut v);
        }
    }

    /// True (and the clock restarted) when `every` has passed since the last probe: keeps
    /// a real write per `/readyz` from turning into load.
    pub fn probe_due(&self, every: Duration) -> bool {
        let Ok(mut last) = self.last_probe.lock() else {
            return false;
        };
        let due = last.is_none_or(|at| at.elapsed() >= every);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// `/metrics` lines: readiness and the vitals.
    pub fn render(&self, out: &mut String) {
        vitals::render(&self.vitals(), self.ready(), out);
    }

    /// Why the node is not ready: each critical component down, with its detail.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .filter(|(_, c)| c.critical && c.state == State::Down)
            .map(|(name, c)| format!("{name}: {}", c.detail))
            .collect()
    }

    /// The `/readyz` reply of this registry as it stands.
    pub fn readiness(&self) -> Readiness {
        let components = self.snapshot();
        let reasons: Vec<String> = components
            .iter()
            .filter(|(_, c)| c.critical && c.state == State::Down)
            .map(|(name, c)| format!("{name}: {}", c.detail))
            .collect();
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            components,
        }
    }

    pub fn ready(&self) -> bool {
        self.snapshot()
            .values()
            .all(|c| !(c.critical && c.state == State::Down))
    }
}
