//! Reader→host frames, built for the simulator and the tests: the version block, tag
//! records (continuous stream and tag buffer) and the keep-alive.

use super::{
    CONTINUOUS_SEARCH_FLAGS, OP_GET_TAG_ID_BUFFER, OP_GET_VERSION, OP_READ_TAG_ID_MULTIPLE,
    OPTION_METADATA, PROTOCOL_GEN2, STATUS_NO_TAGS_FOUND, STATUS_OK, STREAM_TAG, encode_reply,
    metadata,
};
use crate::devices::codec::crc::crc16_genibus;
use crate::devices::codec::gen2::pc_and_epc;

/// The version block of an 0x03 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionInfo {
    pub bootloader: [u8; 4],
    pub hardware: [u8; 4],
    pub firmware_date: [u8; 4],
    pub firmware: [u8; 4],
    pub protocols: u32,
}

pub fn encode_version_reply(version: &VersionInfo) -> Vec<u8> {
    let mut data = Vec::with_capacity(20);
    data.extend_from_slice(&version.bootloader);
    data.extend_from_slice(&version.hardware);
    data.extend_from_slice(&version.firmware_date);
    data.extend_from_slice(&version.firmware);
    data.extend_from_slice(&version.protocols.to_be_bytes());
    encode_reply(OP_GET_VERSION, STATUS_OK, &data)
}

/// One tag read with every metadata field (flags 0x01FF), Gen2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub read_count: u8,
    pub rssi_dbm: i8,
    /// TX port in the high nibble, RX port in the low nibble.
    pub antenna: u8,
    pub frequency_khz: u32,
    pub timestamp_ms: u32,
    pub phase: u16,
    pub gpio: u8,
    pub pc: u16,
    pub epc: Vec<u8>,
    pub tag_crc: u16,
}

impl TagRecord {
    /// A record whose tag CRC is the correct CRC-16/GENIBUS over PC + EPC.
    pub fn with_valid_crc(mut self) -> Self {
        self.tag_crc = crc16_genibus(&pc_and_epc(self.pc, &self.epc));
        self
    }

    fn encode_all_metadata(&self, out: &mut Vec<u8>) {
        out.push(self.read_count);
        out.push(u8::from_be_bytes(self.rssi_dbm.to_be_bytes()));
        out.push(self.antenna);
        out.extend_from_slice(&self.frequency_khz.to_be_bytes()[1..]);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.phase.to_be_bytes());
        out.push(PROTOCOL_GEN2);
        out.extend_from_slice(&[0x00, 0x00]); // no embedded data
        out.push(self.gpio);
        let epc_bits = ((self.epc.len() + 4) * 8) as u16; // PC + EPC + CRC
        out.extend_from_slice(&epc_bits.to_be_bytes());
        out.extend_from_slice(&self.pc.to_be_bytes());
        out.extend_from_slice(&self.epc);
        out.extend_from_slice(&self.tag_crc.to_be_bytes());
    }
}

/// A streamed continuous-read record, as in the corrected 47-byte vector of §4b.
pub fn encode_continuous_record(record: &TagRecord) -> Vec<u8> {
    let mut data = vec![OPTION_METADATA];
    data.extend_from_slice(&CONTINUOUS_SEARCH_FLAGS.to_be_bytes());
    data.extend_from_slice(&metadata::ALL.to_be_bytes());
    data.push(STREAM_TAG);
    record.encode_all_metadata(&mut data);
    encode_reply(OP_READ_TAG_ID_MULTIPLE, STATUS_OK, &data)
}

/// A Get Tag ID Buffer reply holding `records` (all metadata).
pub fn encode_tag_buffer_reply(records: &[TagRecord]) -> Vec<u8> {
    let mut data = metadata::ALL.to_be_bytes().to_vec();
    data.push(0x00); // read options
    data.push(records.len().min(255) as u8);
    for record in records.iter().take(255) {
        record.encode_all_metadata(&mut data);
    }
    encode_reply(OP_GET_TAG_ID_BUFFER, STATUS_OK, &data)
}

/// The keep-alive a continuous read sends when no tag is in the field.
pub fn encode_keep_alive() -> Vec<u8> {
    encode_reply(OP_READ_TAG_ID_MULTIPLE, STATUS_NO_TAGS_FOUND, &[])
}
