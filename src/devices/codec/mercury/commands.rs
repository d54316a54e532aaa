//! Host→reader requests: version, boot, region, protocol, power, and the synchronous and
//! continuous inventories.

use super::{
    CONTINUOUS_ON_TIME_MS, CONTINUOUS_SEARCH_FLAGS, MAX_POWER_CENTI_DBM, OP_BOOT_FIRMWARE,
    OP_GET_TAG_ID_BUFFER, OP_GET_VERSION, OP_MULTI_PROTOCOL_TAG_OP, OP_READ_TAG_ID_MULTIPLE,
    OP_SET_READ_TX_POWER, OP_SET_REGION, OP_SET_TAG_PROTOCOL, OPTION_METADATA, PROTOCOL_GEN2,
    SYNC_SEARCH_FLAGS, encode_command, metadata,
};
use crate::devices::codec::{CommandError, Region};

fn region_code(region: Region) -> u8 {
    match region {
        Region::In => 0x04,
        Region::Jp => 0x05,
        Region::Cn => 0x06,
        Region::Eu => 0x08, // EU3
        Region::Kr => 0x09, // KR2
        Region::Au => 0x0B,
        Region::Us => 0x0D, // NA2
    }
}

pub fn encode_get_version() -> Vec<u8> {
    encode_command(OP_GET_VERSION, &[])
}

pub fn encode_boot_firmware() -> Vec<u8> {
    encode_command(OP_BOOT_FIRMWARE, &[])
}

/// Every [`Region`] has a Mercury code, so this cannot fail; the `Result` keeps the
/// signature in line with the other protocols.
pub fn encode_set_region(region: Region) -> Result<Vec<u8>, CommandError> {
    Ok(encode_command(OP_SET_REGION, &[region_code(region)]))
}

pub fn encode_set_protocol_gen2() -> Vec<u8> {
    encode_command(OP_SET_TAG_PROTOCOL, &[0x00, PROTOCOL_GEN2])
}

pub fn encode_set_read_power(centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
    if centi_dbm > MAX_POWER_CENTI_DBM {
        return Err(CommandError::PowerOutOfRange {
            protocol: "mercury",
            requested: centi_dbm,
            min_centi_dbm: 0,
            max_centi_dbm: MAX_POWER_CENTI_DBM,
        });
    }
    Ok(encode_command(
        OP_SET_READ_TX_POWER,
        &centi_dbm.to_be_bytes(),
    ))
}

/// Synchronous inventory for `timeout_ms`; tags are then fetched with [`encode_get_tag_buffer`].
pub fn encode_read_tag_id_multiple(timeout_ms: u16) -> Vec<u8> {
    let mut data = vec![0x00];
    data.extend_from_slice(&SYNC_SEARCH_FLAGS.to_be_bytes());
    data.extend_from_slice(&timeout_ms.to_be_bytes());
    encode_command(OP_READ_TAG_ID_MULTIPLE, &data)
}

pub fn encode_get_tag_buffer() -> Vec<u8> {
    let mut data = metadata::ALL.to_be_bytes().to_vec();
    data.push(0x00); // read options
    encode_command(OP_GET_TAG_ID_BUFFER, &data)
}

/// Continuous read: a multi-protocol tag op (0x2F, option 1 = continuous) wrapping a Gen2
/// Read Tag ID Multiple that streams one record per read with all metadata.
pub fn encode_start_continuous_read() -> Vec<u8> {
    let mut sub = vec![OP_READ_TAG_ID_MULTIPLE, OPTION_METADATA];
    sub.extend_from_slice(&CONTINUOUS_SEARCH_FLAGS.to_be_bytes());
    sub.extend_from_slice(&CONTINUOUS_ON_TIME_MS.to_be_bytes());
    sub.extend_from_slice(&metadata::ALL.to_be_bytes());
    // timeout 0 (run until stopped), option 1, sub-opcode, search flags 0, protocol, length.
    let mut data = vec![
        0x00,
        0x00,
        0x01,
        OP_READ_TAG_ID_MULTIPLE,
        0x00,
        0x00,
        PROTOCOL_GEN2,
    ];
    data.push(sub.len() as u8 - 1); // the length excludes the sub-opcode itself
    data.extend_from_slice(&sub);
    encode_command(OP_MULTI_PROTOCOL_TAG_OP, &data)
}

pub fn encode_stop_continuous_read() -> Vec<u8> {
    encode_command(OP_MULTI_PROTOCOL_TAG_OP, &[0x00, 0x00, 0x02])
}
