//! What a simulated Chafon reader answers: inventories split over frames, reader
//! information, power, region and the other setters.

use super::RfidSim;
use crate::devices::codec::Region;
use crate::devices::codec::chafon::{self, ChafonInfo, ChafonLayout, InventoryEntry};

impl RfidSim {
    /// One inventory answer, split over frames (status 0x03 = more follow, 0x01 = last);
    /// each frame comes with the number of tags it carries.
    pub(super) fn chafon_inventory_frames(&mut self, layout: ChafonLayout) -> Vec<(Vec<u8>, u64)> {
        let entries: Vec<InventoryEntry> = (0..self.tags.len())
            .map(|index| {
                let rssi = self.jittered_rssi(index);
                chafon::entry_for(
                    self.tags.get(index).map_or(&[][..], Vec::as_slice),
                    rssi.into(),
                )
            })
            .collect();
        if entries.is_empty() {
            return vec![(
                chafon::encode_response(0x00, chafon::CMD_INVENTORY, chafon::STATUS_NO_TAG, &[]),
                0,
            )];
        }
        let mut frames = Vec::new();
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let fits = chafon::entries_per_frame(layout, rest).max(1);
            let (batch, remaining) = rest.split_at(fits.min(rest.len()));
            let status = if remaining.is_empty() {
                chafon::STATUS_INVENTORY_DONE
            } else {
                chafon::STATUS_MORE_FRAMES
            };
            let frame = chafon::encode_inventory_response(0x00, layout, status, 0x01, batch);
            frames.push((frame, batch.len() as u64));
            rest = remaining;
        }
        frames
    }

    pub(super) fn reply_chafon(
        &mut self,
        layout: ChafonLayout,
        command: &chafon::HostCommand,
    ) -> Vec<u8> {
        let layout = match layout {
            ChafonLayout::Auto => ChafonLayout::New,
            fixed => fixed,
        };
        match command.command {
            chafon::CMD_INVENTORY => {
                let mut out = Vec::new();
                for (frame, reads) in self.chafon_inventory_frames(layout) {
                    out.extend(frame);
                    self.valid_reads += reads;
                }
                out
            }
            chafon::CMD_GET_READER_INFO => {
                let (max_fre, min_fre) = match self.region {
                    Region::Us => (49, 0x80),
                    _ => (0x40 | 14, 0x00),
                };
                chafon::encode_reader_info_response(
                    0x00,
                    &ChafonInfo {
                        version: [3, 1],
                        reader_type: 0x09,
                        protocols: 0x03,
                        max_fre,
                        min_fre,
                        power_dbm: (self.power_centi_dbm / 100).min(30) as u8,
                        scan_time_100ms: 10,
                    },
                )
            }
            chafon::CMD_SET_POWER => {
                if let Some(&dbm) = command.data.first() {
                    self.power_centi_dbm = u16::from(dbm) * 100;
                }
                chafon::encode_response(0x00, chafon::CMD_SET_POWER, chafon::STATUS_OK, &[])
            }
            chafon::CMD_SET_REGION => {
                if command.data.first().is_some_and(|max| max & 0x3F == 49) {
                    self.region = Region::Us;
                }
                chafon::encode_response(0x00, chafon::CMD_SET_REGION, chafon::STATUS_OK, &[])
            }
            other @ (chafon::CMD_SET_SCAN_TIME | chafon::CMD_SET_ADDRESS) => {
                chafon::encode_response(0x00, other, chafon::STATUS_OK, &[])
            }
            other => chafon::encode_response(0x00, other, 0xFE, &[]),
        }
    }
}
