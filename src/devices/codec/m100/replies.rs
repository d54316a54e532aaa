//! Reader→host frames, built for the simulator and the tests: tag notifications, module
//! information, power, acknowledgements and errors.

use super::{
    CMD_ERROR, CMD_GET_INFO, CMD_GET_TX_POWER, CMD_SINGLE_POLL, InfoKind, TYPE_NOTIFICATION,
    TYPE_RESPONSE, encode_frame,
};
use crate::devices::codec::crc::crc16_genibus;
use crate::devices::codec::gen2::pc_and_epc;

/// A tag notification as a module sends it during polling, with the tag CRC computed.
pub fn encode_tag_notification(rssi_dbm: i8, pc: u16, epc: &[u8]) -> Vec<u8> {
    let pc_epc = pc_and_epc(pc, epc);
    let tag_crc = crc16_genibus(&pc_epc);
    let mut params = Vec::with_capacity(pc_epc.len() + 3);
    params.push(u8::from_be_bytes(rssi_dbm.to_be_bytes()));
    params.extend_from_slice(&pc_epc);
    params.extend_from_slice(&tag_crc.to_be_bytes());
    encode_frame(TYPE_NOTIFICATION, CMD_SINGLE_POLL, &params)
}

pub fn encode_info_response(kind: InfoKind, text: &str) -> Vec<u8> {
    let mut params = vec![kind as u8];
    params.extend_from_slice(text.as_bytes());
    encode_frame(TYPE_RESPONSE, CMD_GET_INFO, &params)
}

pub fn encode_tx_power_response(centi_dbm: u16) -> Vec<u8> {
    encode_frame(TYPE_RESPONSE, CMD_GET_TX_POWER, &centi_dbm.to_be_bytes())
}

/// The "success" reply to a setter (param 0x00).
pub fn encode_ack(command: u8) -> Vec<u8> {
    encode_frame(TYPE_RESPONSE, command, &[0x00])
}

pub fn encode_error(code: u8) -> Vec<u8> {
    encode_frame(TYPE_RESPONSE, CMD_ERROR, &[code])
}
