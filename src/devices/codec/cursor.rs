//! Bounds-checked big-endian reads of reply data: a sequential [`Cursor`] and the
//! random-access [`be_u16`]. Every read of device bytes goes through one of them, so a
//! short or malformed payload is `None`, never a panic.

/// Reads a big-endian u16 at `at`, if the slice is long enough.
pub fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*pair.first()?, *pair.get(1)?]))
}

/// Bounds-checked big-endian reads over a byte slice.
#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(count)?;
        self.bytes = rest;
        Some(head)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub fn u24(&mut self) -> Option<u32> {
        self.array::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        assert_eq!(be_u16(&[1, 2, 3], 1), Some(0x0203));
        assert_eq!(be_u16(&[1, 2, 3], 2), None);
        let mut cursor = Cursor::new(&[1, 2, 3, 4]);
        assert_eq!(cursor.u24(), Some(0x01_0203));
        assert_eq!(cursor.u16(), None);
        assert_eq!(cursor.u8(), Some(4));
    }
}
