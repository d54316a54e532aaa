//! Reader→host frames, built for the simulator and the tests: inventory replies in either
//! layout (split over frames by the caller) and the reader-information block.

use super::{
    CMD_GET_READER_INFO, CMD_INVENTORY, ChafonLayout, STATUS_OK, encode_response, region_for_band,
    rssi_to_raw,
};
use crate::devices::codec::Region;

/// One tag entry of an inventory reply; `rssi` is only sent in the new layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryEntry {
    pub epc: Vec<u8>,
    pub rssi: u8,
}

/// Inventory reply in `layout` (`Auto` encodes as `Old`). Entries beyond what one frame
/// holds are left out: the caller splits them over several frames with status 0x03.
pub fn encode_inventory_response(
    address: u8,
    layout: ChafonLayout,
    status: u8,
    antenna_mask: u8,
    entries: &[InventoryEntry],
) -> Vec<u8> {
    let new_layout = layout == ChafonLayout::New;
    let mut data = Vec::new();
    if new_layout {
        data.push(antenna_mask);
    }
    data.push(0); // Num, patched below
    let mut count = 0u8;
    for entry in entries {
        let entry_len = entry.epc.len() + 1 + usize::from(new_layout);
        if data.len() + entry_len > 250 || count == u8::MAX {
            break;
        }
        data.push(entry.epc.len() as u8);
        data.extend_from_slice(&entry.epc);
        if new_layout {
            data.push(entry.rssi);
        }
        count += 1;
    }
    if let Some(num) = data.get_mut(usize::from(new_layout)) {
        *num = count;
    }
    encode_response(address, CMD_INVENTORY, status, &data)
}

/// How many entries [`encode_inventory_response`] fits in one frame.
pub fn entries_per_frame(layout: ChafonLayout, entries: &[InventoryEntry]) -> usize {
    let new_layout = layout == ChafonLayout::New;
    let mut used = 1 + usize::from(new_layout);
    entries
        .iter()
        .take_while(|entry| {
            used += entry.epc.len() + 1 + usize::from(new_layout);
            used <= 250
        })
        .count()
}

/// The reader-information block of a 0x21 reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChafonInfo {
    pub version: [u8; 2],
    pub reader_type: u8,
    pub protocols: u8,
    pub max_fre: u8,
    pub min_fre: u8,
    pub power_dbm: u8,
    pub scan_time_100ms: u8,
}

impl ChafonInfo {
    pub fn region(&self) -> Option<Region> {
        region_for_band(((self.max_fre >> 6) << 2) | (self.min_fre >> 6))
    }
}

pub fn encode_reader_info_response(address: u8, info: &ChafonInfo) -> Vec<u8> {
    let [major, minor] = info.version;
    let data = [
        major,
        minor,
        info.reader_type,
        info.protocols,
        info.max_fre,
        info.min_fre,
        info.power_dbm,
        info.scan_time_100ms,
    ];
    encode_response(address, CMD_GET_READER_INFO, STATUS_OK, &data)
}

/// Helper for simulators: the entry a tag read becomes in an inventory reply.
pub fn entry_for(epc: &[u8], rssi_dbm: i16) -> InventoryEntry {
    InventoryEntry {
        epc: epc.to_vec(),
        rssi: rssi_to_raw(rssi_dbm),
    }
}
