//! EPC Gen2 tag memory as the readers pass it through: the protocol-control (PC) word, its
//! optional XPC words, the EPC, and the tag's own CRC-16 over what it backscattered.

use super::cursor::be_u16;

/// EPC length in bytes announced by a Gen2 PC word (bits 15..11 = length in 16-bit words).
pub fn epc_len_from_pc(pc: u16) -> usize {
    usize::from(pc >> 11) * 2
}

/// PC word for an EPC of this length with no UMI/XPC bits set (0x3000 for 96 bits).
pub fn pc_for_epc(epc: &[u8]) -> u16 {
    ((epc.len() / 2).min(31) as u16) << 11
}

/// PC followed by EPC: the bytes the tag's CRC covers when no XPC words are present.
pub fn pc_and_epc(pc: u16, epc: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(epc.len() + 2);
    bytes.extend_from_slice(&pc.to_be_bytes());
    bytes.extend_from_slice(epc);
    bytes
}

/// Splits PC (+ XPC_W1 when PC bit 9 is set, + XPC_W2 when XPC_W1 bit 15 is set) off the EPC.
pub fn split_pc(id: &[u8]) -> Option<(Option<u16>, &[u8])> {
    let pc = be_u16(id, 0)?;
    let mut skip = 2;
    if pc & 0x0200 != 0 {
        let xpc_w1 = be_u16(id, 2)?;
        skip += if xpc_w1 & 0x8000 != 0 { 4 } else { 2 };
    }
    Some((Some(pc), id.get(skip..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc_word_gives_epc_length() {
        assert_eq!(epc_len_from_pc(0x3000), 12);
        assert_eq!(epc_len_from_pc(0x3400), 12);
        assert_eq!(epc_len_from_pc(0x4000), 16);
        assert_eq!(pc_for_epc(&[0; 12]), 0x3000);
    }
}
