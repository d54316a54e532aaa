//! The CRC-16 variants used by the reader protocols. Each is written out bit- or nibble-wise:
//! frames are short (< 300 bytes) so table-driven speed is not worth the extra tables.

/// CRC-16/GENIBUS (poly 0x1021, init 0xFFFF, no reflection, output inverted): the tag's own
/// CRC over PC + EPC that Gen2 readers pass through after the EPC.
pub fn crc16_genibus(data: &[u8]) -> u16 {
    !crc16_ccitt_false(data)
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no final xor). Kept for the test that shows
/// the ThingMagic CRC is *not* this one, and as the base of GENIBUS.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF_u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// Nibble table of the ThingMagic message CRC (the 16 multiples of 0x1021 in GF(2)).
const THINGMAGIC_TABLE: [u16; 16] = [
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
];

/// ThingMagic / Mercury message CRC. It looks like CCITT but feeds each byte as two nibbles
/// *into* the register before reducing, so its values differ (PROTOCOLS.md §4b).
pub fn crc16_thingmagic(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF_u16, |crc, &byte| {
        let crc = feed_nibble(crc, byte >> 4);
        feed_nibble(crc, byte & 0x0F)
    })
}

fn feed_nibble(crc: u16, nibble: u8) -> u16 {
    // `crc >> 12` is 0..=15, so the index is always in bounds.
    let reduce = THINGMAGIC_TABLE[usize::from(crc >> 12)];
    ((crc << 4) | u16::from(nibble)) ^ reduce
}

/// CRC-16/MCRF4XX (reflected poly 0x8408, init 0xFFFF, no final xor): the Chafon /
/// UHFReader18 frame CRC, sent least significant byte first.
pub fn crc16_mcrf4xx(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF_u16, |mut crc, &byte| {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
        crc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_values() {
        // The catalogue "check" values over ASCII "123456789".
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
        assert_eq!(crc16_genibus(b"123456789"), 0xD64E);
        assert_eq!(crc16_mcrf4xx(b"123456789"), 0x6F91);
    }

    #[test]
    fn genibus_matches_m100_tag_crc() {
        let pc_epc = hex::decode("3400".to_owned() + "30751FEB705C5904E3D50D70").unwrap();
        assert_eq!(crc16_genibus(&pc_epc), 0x3A76);
    }

    #[test]
    fn thingmagic_differs_from_ccitt_false_on_the_documented_record() {
        // LEN..end of data of the corrected 47-byte continuous-read record (PROTOCOLS.md §4b).
        let body = hex::decode(
            "2822000010001B01FF0101C4110E1640000001270000050000\
             0F00803000000000000000000000001545E94A",
        )
        .unwrap();
        assert_eq!(crc16_thingmagic(&body), 0x561D);
        assert_eq!(crc16_ccitt_false(&body), 0xF542);
    }

    #[test]
    fn thingmagic_get_version_command() {
        assert_eq!(crc16_thingmagic(&[0x00, 0x03]), 0x1D0C);
    }

    #[test]
    fn mcrf4xx_matches_chafon_info_command() {
        assert_eq!(crc16_mcrf4xx(&[0x04, 0xFF, 0x21]), 0x9519);
    }
}
