//! The `[devices]` section: serial scanners and RFID readers.

use std::path::Path;

use serde::Deserialize;

use crate::config::ConfigError;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {}

/// Validated device configuration.
#[derive(Debug, Clone, Default)]
pub struct DevicesConfig {}

impl RawDevices {
    pub fn validate(self, _file: &Path) -> Result<DevicesConfig, ConfigError> {
        Ok(DevicesConfig {})
    }
}
