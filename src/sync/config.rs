//! The `[sync]` section (store ↔ HQ over MQTT) and the `[hq]` section (`storenode hq`).

use std::path::Path;

use serde::Deserialize;

use crate::config::ConfigError;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSync {}

/// Validated sync configuration; `None` in [`crate::config::Config`] when sync is off.
#[derive(Debug, Clone, Default)]
pub struct SyncConfig {}

impl RawSync {
    pub fn validate(self, _file: &Path) -> Result<SyncConfig, ConfigError> {
        Ok(SyncConfig {})
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHq {}

#[derive(Debug, Clone, Default)]
pub struct HqConfig {}

impl RawHq {
    pub fn validate(self, _file: &Path) -> Result<HqConfig, ConfigError> {
        Ok(HqConfig {})
    }
}
