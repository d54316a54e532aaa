//! What a simulated Mercury module answers: version, setters, the synchronous read with its
//! tag buffer, and continuous reading; and the tag records it streams.

use rand::Rng;

use super::RfidSim;
use crate::devices::codec::gen2::pc_for_epc;
use crate::devices::codec::mercury::{self, TagRecord, VersionInfo};

impl RfidSim {
    pub(super) fn mercury_record(&mut self, epc: &[u8], rssi: i8) -> TagRecord {
        self.clock_ms = self.clock_ms.wrapping_add(self.rng.random_range(1..20));
        TagRecord {
            read_count: 1,
            rssi_dbm: rssi,
            antenna: 0x11,
            frequency_khz: 865_700 + 600 * self.rng.random_range(0..4u32),
            timestamp_ms: self.clock_ms,
            phase: self.rng.random_range(0..180),
            gpio: 0x0F,
            pc: pc_for_epc(epc),
            epc: epc.to_vec(),
            tag_crc: 0,
        }
        .with_valid_crc()
    }

    pub(super) fn reply_mercury(&mut self, command: &mercury::HostCommand) -> Vec<u8> {
        use mercury::{STATUS_NO_TAGS_FOUND, STATUS_OK, encode_reply};
        let opcode = command.opcode;
        match opcode {
            mercury::OP_GET_VERSION => mercury::encode_version_reply(&VersionInfo {
                bootloader: [0x12, 0x08, 0x00, 0x30],
                hardware: [0x18, 0x00, 0x00, 0x01],
                firmware_date: [0x20, 0x24, 0x01, 0x15],
                firmware: [0x01, 0x0B, 0x03, 0x02],
                protocols: 0x0000_0010,
            }),
            mercury::OP_BOOT_FIRMWARE
            | mercury::OP_SET_REGION
            | mercury::OP_SET_TAG_PROTOCOL
            | mercury::OP_SET_READ_TX_POWER => encode_reply(opcode, STATUS_OK, &[]),
            mercury::OP_READ_TAG_ID_MULTIPLE => {
                self.mercury_buffer = (0..self.tags.len())
                    .map(|index| {
                        let rssi = self.jittered_rssi(index);
                        let epc = self.tags.get(index).cloned().unwrap_or_default();
                        self.mercury_record(&epc, rssi)
                    })
                    .collect();
                if self.mercury_buffer.is_empty() {
                    return encode_reply(opcode, STATUS_NO_TAGS_FOUND, &[]);
                }
                let count = self.mercury_buffer.len().min(255) as u8;
                encode_reply(opcode, STATUS_OK, &[0x00, 0x00, 0x13, count])
            }
            mercury::OP_GET_TAG_ID_BUFFER => {
                let records = std::mem::take(&mut self.mercury_buffer);
                let records = &records[..records.len().min(255)];
                self.valid_reads += records.len() as u64;
                mercury::encode_tag_buffer_reply(records)
            }
            mercury::OP_MULTI_PROTOCOL_TAG_OP => {
                match command.data.get(2) {
                    Some(0x01) => self.streaming = true,
                    Some(0x02) => self.streaming = false,
                    _ => {}
                }
                encode_reply(opcode, STATUS_OK, command.data.get(..3).unwrap_or_default())
            }
            _ => encode_reply(opcode, 0x0101, &[]),
        }
    }
}
