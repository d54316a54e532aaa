//! Host→reader requests: polling, module information, region and transmit power.

use super::{
    CMD_GET_INFO, CMD_GET_TX_POWER, CMD_MULTI_POLL, CMD_SET_REGION, CMD_SET_TX_POWER,
    CMD_SINGLE_POLL, CMD_STOP_MULTI_POLL, InfoKind, MAX_POWER_CENTI_DBM, MULTI_POLL_RESERVED,
    TYPE_COMMAND, encode_frame,
};
use crate::devices::codec::{CommandError, Region};

fn region_code(region: Region) -> Option<u8> {
    match region {
        Region::Cn => Some(0x01), // China 920-925 MHz
        Region::Us => Some(0x02),
        Region::Eu => Some(0x03),
        Region::Kr => Some(0x06),
        Region::Jp | Region::Au | Region::In => None,
    }
}

pub fn encode_single_poll() -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_SINGLE_POLL, &[])
}

pub fn encode_multi_poll(rounds: u16) -> Vec<u8> {
    let [hi, lo] = rounds.to_be_bytes();
    encode_frame(TYPE_COMMAND, CMD_MULTI_POLL, &[MULTI_POLL_RESERVED, hi, lo])
}

pub fn encode_stop_multi_poll() -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_STOP_MULTI_POLL, &[])
}

pub fn encode_get_info(kind: InfoKind) -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_GET_INFO, &[kind as u8])
}

pub fn encode_set_region(region: Region) -> Result<Vec<u8>, CommandError> {
    let code = region_code(region).ok_or(CommandError::UnsupportedRegion {
        protocol: "m100",
        region,
    })?;
    Ok(encode_frame(TYPE_COMMAND, CMD_SET_REGION, &[code]))
}

pub fn encode_get_tx_power() -> Vec<u8> {
    encode_frame(TYPE_COMMAND, CMD_GET_TX_POWER, &[])
}

pub fn encode_set_tx_power(centi_dbm: u16) -> Result<Vec<u8>, CommandError> {
    if centi_dbm > MAX_POWER_CENTI_DBM {
        return Err(CommandError::PowerOutOfRange {
            protocol: "m100",
            requested: centi_dbm,
            min_centi_dbm: 0,
            max_centi_dbm: MAX_POWER_CENTI_DBM,
        });
    }
    Ok(encode_frame(
        TYPE_COMMAND,
        CMD_SET_TX_POWER,
        &centi_dbm.to_be_bytes(),
    ))
}
