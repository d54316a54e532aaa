//! Host→reader requests: inventory, reader information, power, region and scan time.

use super::{
    CMD_GET_READER_INFO, CMD_INVENTORY, CMD_SET_POWER, CMD_SET_REGION, CMD_SET_SCAN_TIME,
    MAX_POWER_DBM, band_for, encode_command,
};
use crate::devices::codec::{CommandError, Region};

pub fn encode_inventory(address: u8) -> Vec<u8> {
    encode_command(address, CMD_INVENTORY, &[])
}

pub fn encode_get_reader_info(address: u8) -> Vec<u8> {
    encode_command(address, CMD_GET_READER_INFO, &[])
}

/// Power is set in whole dBm (0..=30); centi-dBm are rounded to the nearest dBm.
pub fn encode_set_power(address: u8, centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
    let dbm = centi_dbm.saturating_add(50) / 100;
    if dbm > u16::from(MAX_POWER_DBM) {
        return Err(CommandError::PowerOutOfRange {
            protocol: "chafon",
            requested: centi_dbm,
            min_centi_dbm: 0,
            max_centi_dbm: u16::from(MAX_POWER_DBM) * 100,
        });
    }
    Ok(encode_command(address, CMD_SET_POWER, &[dbm as u8]))
}

/// Selects the region's band with its full channel range.
pub fn encode_set_region(address: u8, region: Region) -> Result<Vec<u8>, CommandError> {
    let (band, top_channel) = band_for(region).ok_or(CommandError::UnsupportedRegion {
        protocol: "chafon",
        region,
    })?;
    let max_fre = ((band >> 2) << 6) | top_channel;
    let min_fre = (band & 0b11) << 6;
    Ok(encode_command(address, CMD_SET_REGION, &[max_fre, min_fre]))
}

/// Inventory scan time in units of 100 ms (readers treat 0..=2 as their default).
pub fn encode_set_scan_time(address: u8, units_100ms: u8) -> Vec<u8> {
    encode_command(address, CMD_SET_SCAN_TIME, &[units_100ms])
}
