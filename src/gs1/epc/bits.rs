//! Bit-level reading and writing, MSB first, and the TDS partition tables.

/// Bit sizes and decimal widths of the two numbers after the partition field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Partition {
    pub prefix_bits: u32,
    pub prefix_digits: usize,
    pub reference_bits: u32,
    pub reference_digits: usize,
}

const fn p(
    prefix_bits: u32,
    prefix_digits: usize,
    reference_bits: u32,
    reference_digits: usize,
) -> Partition {
    Partition {
        prefix_bits,
        prefix_digits,
        reference_bits,
        reference_digits,
    }
}

/// SGTIN: company prefix and item reference (indicator digit included).
pub(super) const SGTIN_PARTITIONS: [Partition; 7] = [
    p(40, 12, 4, 1),
    p(37, 11, 7, 2),
    p(34, 10, 10, 3),
    p(30, 9, 14, 4),
    p(27, 8, 17, 5),
    p(24, 7, 20, 6),
    p(20, 6, 24, 7),
];

/// SSCC-96: company prefix and serial reference (extension digit included).
pub(super) const SSCC_PARTITIONS: [Partition; 7] = [
    p(40, 12, 18, 5),
    p(37, 11, 21, 6),
    p(34, 10, 24, 7),
    p(30, 9, 28, 8),
    p(27, 8, 31, 9),
    p(24, 7, 34, 10),
    p(20, 6, 38, 11),
];

/// GIAI-96: company prefix and a numeric asset reference of at most
/// `reference_digits` digits (no leading zeros, so not zero-padded).
pub(super) const GIAI_PARTITIONS: [Partition; 7] = [
    p(40, 12, 42, 13),
    p(37, 11, 45, 14),
    p(34, 10, 48, 15),
    p(30, 9, 52, 16),
    p(27, 8, 55, 17),
    p(24, 7, 58, 18),
    p(20, 6, 62, 19),
];

/// Reads big-endian bit fields from a byte slice.
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, position: 0 }
    }

    /// The next `bits` (at most 64) as a number, or `None` past the end.
    pub fn read(&mut self, bits: u32) -> Option<u64> {
        if bits > 64 {
            return None;
        }
        let mut value = 0u64;
        for _ in 0..bits {
            let byte = self.bytes.get(self.position / 8)?;
            let bit = (byte >> (7 - self.position % 8)) & 1;
            value = (value << 1) | u64::from(bit);
            self.position += 1;
        }
        Some(value)
    }
}

/// Writes big-endian bit fields into a fixed-size buffer.
pub(super) struct BitWriter<const N: usize> {
    bytes: [u8; N],
    position: usize,
}

impl<const N: usize> BitWriter<N> {
    pub fn new() -> Self {
        BitWriter {
            bytes: [0; N],
            position: 0,
        }
    }

    /// Appends the low `bits` bits of `value`. Callers size the buffer from
    /// the scheme layout, so writing past the end is a bug; the extra bits
    /// are dropped rather than panicking.
    pub fn write(&mut self, value: u64, bits: u32) {
        for shift in (0..bits.min(64)).rev() {
            let bit = ((value >> shift) & 1) as u8;
            if let Some(byte) = self.bytes.get_mut(self.position / 8) {
                *byte |= bit << (7 - self.position % 8);
            }
            self.position += 1;
        }
    }

    pub fn finish(self) -> [u8; N] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_fill_their_field() {
        for part in SGTIN_PARTITIONS {
            assert_eq!(part.prefix_bits + part.reference_bits, 44);
            assert_eq!(part.prefix_digits + part.reference_digits, 13);
        }
        for part in SSCC_PARTITIONS {
            assert_eq!(part.prefix_bits + part.reference_bits, 58);
            assert_eq!(part.prefix_digits + part.reference_digits, 17);
        }
        for part in GIAI_PARTITIONS {
            assert_eq!(part.prefix_bits + part.reference_bits, 82);
            assert_eq!(part.prefix_digits + part.reference_digits, 25);
        }
    }

    #[test]
    fn write_then_read() {
        let mut w = BitWriter::<3>::new();
        w.write(0b101, 3);
        w.write(0x1234, 16);
        w.write(1, 64);
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        assert_eq!(r.read(3), Some(0b101));
        assert_eq!(r.read(16), Some(0x1234));
        assert_eq!(r.read(5), Some(0));
        assert_eq!(r.read(1), None);
        assert_eq!(r.read(65), None);
    }
}
