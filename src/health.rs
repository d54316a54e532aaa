//! Component health for `/readyz`, metrics and `diag status`: each subsystem (a serial port,
//! the MQTT link, the store) reports its own state here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    /// Working around a problem (a device unplugged, HQ unreachable): sales go on.
    Degraded,
    /// Not working; if `critical`, the node is not ready.
    Down,
}

#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub state: State,
    pub detail: String,
    pub since: String,
    /// A critical component down makes `/readyz` answer 503.
    pub critical: bool,
}

#[derive(Default)]
pub struct Health {
    components: Mutex<BTreeMap<String, Component>>,
}

impl Health {
    pub fn set(&self, name: &str, state: State, detail: impl Into<String>, critical: bool) {
        let Ok(mut map) = self.components.lock() else {
            return;
        };
        let detail = detail.into();
        let unchanged = map
            .get(name)
            .is_some_and(|c| c.state == state && c.detail == detail);
        if !unchanged {
            map.insert(
                name.to_string(),
                Component {
                    state,
                    detail,
                    since: crate::store::now_utc(),
                    critical,
                },
            );
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Component> {
        self.components
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    pub fn ready(&self) -> bool {
        self.snapshot()
            .values()
            .all(|c| !(c.critical && c.state == State::Down))
    }
}
