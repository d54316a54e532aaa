//! What a simulated M100 module answers: module information, single polls, multi-poll
//! start and stop, power and region.

use super::RfidSim;
use crate::devices::codec::m100::{self, InfoKind};

impl RfidSim {
    pub(super) fn reply_m100(&mut self, command: &m100::HostCommand) -> Vec<u8> {
        let first_param = command.params.first().copied();
        match command.command {
            m100::CMD_GET_INFO => {
                let (kind, text) = match first_param {
                    Some(0x01) => (InfoKind::Software, "V2.3.1"),
                    Some(0x02) => (InfoKind::Manufacturer, "MagicRF"),
                    _ => (InfoKind::Hardware, "M100 26dBm V1.0"),
                };
                m100::encode_info_response(kind, text)
            }
            m100::CMD_SINGLE_POLL => {
                if self.tags.is_empty() {
                    return m100::encode_error(m100::ERR_INVENTORY_FAIL);
                }
                let mut out = Vec::new();
                for index in 0..self.tags.len() {
                    out.extend(self.single_read_frame(index));
                    self.valid_reads += 1;
                }
                out
            }
            m100::CMD_MULTI_POLL => {
                self.streaming = true;
                Vec::new()
            }
            m100::CMD_STOP_MULTI_POLL => {
                self.streaming = false;
                m100::encode_ack(m100::CMD_STOP_MULTI_POLL)
            }
            m100::CMD_SET_TX_POWER => {
                if let Some(&[hi, lo]) = command.params.get(..2) {
                    self.power_centi_dbm = u16::from_be_bytes([hi, lo]);
                }
                m100::encode_ack(m100::CMD_SET_TX_POWER)
            }
            m100::CMD_GET_TX_POWER => m100::encode_tx_power_response(self.power_centi_dbm),
            m100::CMD_SET_REGION => m100::encode_ack(m100::CMD_SET_REGION),
            _ => m100::encode_error(0x17),
        }
    }
}
