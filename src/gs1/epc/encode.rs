//! EPC encoders, for tests, tag simulators and writing tags.
//!
//! The partition is chosen from the company prefix length (6 to 12 digits),
//! as TDS prescribes; the other fields must then have the matching width.

use super::super::Gs1Error;
use super::super::ai::is_cset82;
use super::bits::{BitWriter, GIAI_PARTITIONS, Partition, SGTIN_PARTITIONS, SSCC_PARTITIONS};
use super::{HEADER_GIAI96, HEADER_SGTIN96, HEADER_SGTIN198, HEADER_SSCC96};

/// SGTIN-96. The serial is numeric and below 2^38; longer or alphanumeric
/// serials (or ones with leading zeros) need SGTIN-198.
pub fn encode_sgtin96(
    filter: u8,
    company_prefix: &str,
    item_reference: &str,
    serial: u64,
) -> Result<[u8; 12], Gs1Error> {
    let (index, part) = partition_for(&SGTIN_PARTITIONS, company_prefix)?;
    let item = fixed_width("item reference", item_reference, part)?;
    let serial = fits("serial", serial, 38)?;
    let mut w = start::<12>(HEADER_SGTIN96, filter, index, part, company_prefix)?;
    w.write(item, part.reference_bits);
    w.write(serial, 38);
    Ok(w.finish())
}

/// SGTIN-198: the serial is 1 to 20 characters of GS1 character set 82,
/// stored as 7-bit codes.
pub fn encode_sgtin198(
    filter: u8,
    company_prefix: &str,
    item_reference: &str,
    serial: &str,
) -> Result<[u8; 25], Gs1Error> {
    let (index, part) = partition_for(&SGTIN_PARTITIONS, company_prefix)?;
    let item = fixed_width("item reference", item_reference, part)?;
    let length = serial.chars().count();
    if !(1..=20).contains(&length) {
        return Err(Gs1Error::EpcSerialLength {
            field: "serial",
            max: 20,
            got: length,
        });
    }
    if let Some((i, found)) = serial.chars().enumerate().find(|&(_, c)| !is_cset82(c)) {
        return Err(Gs1Error::InvalidCharacter {
            found,
            position: i + 1,
        });
    }
    let mut w = start::<25>(HEADER_SGTIN198, filter, index, part, company_prefix)?;
    w.write(item, part.reference_bits);
    // Unused character slots stay zero, which terminates the serial.
    for byte in serial.bytes() {
        w.write(u64::from(byte), 7);
    }
    Ok(w.finish())
}

/// SSCC-96. `serial_reference` includes the extension digit; its width is
/// 17 minus the company prefix length.
pub fn encode_sscc96(
    filter: u8,
    company_prefix: &str,
    serial_reference: &str,
) -> Result<[u8; 12], Gs1Error> {
    let (index, part) = partition_for(&SSCC_PARTITIONS, company_prefix)?;
    let serial = fixed_width("serial reference", serial_reference, part)?;
    let mut w = start::<12>(HEADER_SSCC96, filter, index, part, company_prefix)?;
    w.write(serial, part.reference_bits);
    // The remaining 24 bits are reserved and zero.
    Ok(w.finish())
}

/// GIAI-96. The asset reference is numeric without leading zeros (TDS), at
/// most 25 minus the company prefix length digits, and must fit its bits.
pub fn encode_giai96(
    filter: u8,
    company_prefix: &str,
    asset_reference: &str,
) -> Result<[u8; 12], Gs1Error> {
    let (index, part) = partition_for(&GIAI_PARTITIONS, company_prefix)?;
    let digits = asset_reference.len();
    if digits == 0 || digits > part.reference_digits {
        return Err(Gs1Error::EpcSerialLength {
            field: "asset reference",
            max: part.reference_digits,
            got: digits,
        });
    }
    if asset_reference.len() > 1 && asset_reference.starts_with('0') {
        return Err(Gs1Error::EpcLeadingZero {
            field: "asset reference",
            value: asset_reference.to_string(),
        });
    }
    let asset = fits(
        "asset reference",
        number("asset reference", asset_reference)?,
        part.reference_bits,
    )?;
    let mut w = start::<12>(HEADER_GIAI96, filter, index, part, company_prefix)?;
    w.write(asset, part.reference_bits);
    Ok(w.finish())
}

/// Partition index and layout for a company prefix of 6 to 12 digits.
fn partition_for(
    table: &[Partition; 7],
    company_prefix: &str,
) -> Result<(u64, Partition), Gs1Error> {
    let digits = company_prefix.len();
    table
        .iter()
        .zip(0u64..)
        .find(|(p, _)| p.prefix_digits == digits)
        .map(|(p, index)| (index, *p))
        .ok_or(Gs1Error::EpcCompanyPrefixLength(digits))
}

/// Header, filter, partition and company prefix: common to all schemes.
fn start<const N: usize>(
    header: u8,
    filter: u8,
    partition_index: u64,
    part: Partition,
    company_prefix: &str,
) -> Result<BitWriter<N>, Gs1Error> {
    if filter > 7 {
        return Err(Gs1Error::EpcFilter(filter));
    }
    let prefix = number("company prefix", company_prefix)?;
    let mut w = BitWriter::new();
    w.write(u64::from(header), 8);
    w.write(u64::from(filter), 3);
    w.write(partition_index, 3);
    w.write(prefix, part.prefix_bits);
    Ok(w)
}

/// A zero-padded numeric field whose width the partition fixes.
fn fixed_width(field: &'static str, value: &str, part: Partition) -> Result<u64, Gs1Error> {
    if value.len() != part.reference_digits {
        return Err(Gs1Error::EpcFieldLength {
            field,
            expected: part.reference_digits,
            prefix_digits: part.prefix_digits,
            got: value.len(),
        });
    }
    fits(field, number(field, value)?, part.reference_bits)
}

fn number(field: &'static str, digits: &str) -> Result<u64, Gs1Error> {
    super::super::gtin::digit_values(digits)?;
    digits.parse().map_err(|_| Gs1Error::EpcFieldTooLarge {
        field,
        value: digits.to_string(),
        bits: 64,
    })
}

fn fits(field: &'static str, value: u64, bits: u32) -> Result<u64, Gs1Error> {
    if bits < 64 && value >> bits != 0 {
        return Err(Gs1Error::EpcFieldTooLarge {
            field,
            value: value.to_string(),
            bits,
        });
    }
    Ok(value)
}
