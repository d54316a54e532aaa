//! Mercury vectors from PROTOCOLS.md §4b (including the corrected 47-byte record), resync
//! over garbage and corruption, and property tests over arbitrary bytes.

use bytes::BytesMut;
use proptest::prelude::*;

use super::decode::antenna_port;
use super::*;
use crate::devices::codec::test_support::{bytes, decode_all, decode_split_at, feed_chunks};
use crate::devices::codec::{ReaderEvent, Region, TagRead};

const RECORD: &str =
    "FF 28 22 00 00 10 00 1B 01 FF 01 01 C4 11 0E 16 40 00 00 01 27 00 00 05 00 00 0F 00 80
    30 00 00 00 00 00 00 00 00 00 00 00 15 45 E9 4A 56 1D";

fn documented_record() -> TagRecord {
    TagRecord {
        read_count: 1,
        rssi_dbm: -60,
        antenna: 0x11,
        frequency_khz: 923_200,
        timestamp_ms: 0x127,
        phase: 0,
        gpio: 0x0F,
        pc: 0x3000,
        epc: bytes("000000000000000000001545"),
        tag_crc: 0xE94A,
    }
}

#[test]
fn command_vectors_byte_for_byte() {
    assert_eq!(encode_get_version(), bytes("FF 00 03 1D 0C"));
    assert_eq!(encode_boot_firmware(), bytes("FF 00 04 1D 0B"));
    assert_eq!(
        encode_set_region(Region::Us).unwrap(),
        bytes("FF 01 97 0D 4B B0")
    );
    assert_eq!(encode_set_protocol_gen2(), bytes("FF 02 93 00 05 51 7D"));
    assert_eq!(
        encode_read_tag_id_multiple(500),
        bytes("FF 05 22 00 00 13 01 F4 2B 19")
    );
    assert_eq!(encode_get_tag_buffer(), bytes("FF 03 29 01 FF 00 1B 03"));
    assert_eq!(
        encode_start_continuous_read(),
        bytes("FF 10 2F 00 00 01 22 00 00 05 07 22 10 00 1B 03 E8 01 FF DD 2B")
    );
    assert_eq!(
        encode_stop_continuous_read(),
        bytes("FF 03 2F 00 00 02 5E 86")
    );
    assert_eq!(
        encode_set_read_power(2000).unwrap()[..5],
        bytes("FF 02 92 07 D0")[..]
    );
    assert!(encode_set_read_power(4000).is_err());
}

#[test]
fn corrected_continuous_record_decodes() {
    let frame = bytes(RECORD);
    assert_eq!(frame.len(), 47);
    let events = decode_all(&mut MercuryCodec::new(), &frame);
    assert_eq!(
        events,
        vec![ReaderEvent::Tag(TagRead {
            epc: bytes("000000000000000000001545"),
            pc: Some(0x3000),
            rssi_dbm: Some(-60),
            antenna: 1,
            frequency_khz: Some(923_200),
            tag_crc_ok: Some(true),
        })]
    );
}

#[test]
fn continuous_record_encoder_reproduces_vector() {
    assert_eq!(
        encode_continuous_record(&documented_record()),
        bytes(RECORD)
    );
    assert_eq!(documented_record().with_valid_crc(), documented_record());
}

#[test]
fn sparkfun_record_one_byte_short_is_not_a_frame() {
    // The printed example lacks one 00 of the EPC: 46 bytes where LEN 0x28 needs 47.
    let mut short = bytes(RECORD);
    short.remove(31);
    assert_eq!(short.len(), 46);
    let mut codec = MercuryCodec::new();
    assert!(decode_all(&mut codec, &short).is_empty());
    assert_eq!(codec.stats().frames, 0);
    // Followed by more traffic, the short record's LEN swallows a byte of the next frame,
    // fails its CRC, and the decoder resynchronises onto the good frame.
    let mut codec = MercuryCodec::new();
    short.extend(bytes(RECORD));
    let events = decode_all(&mut codec, &short);
    assert_eq!(events.len(), 1);
    assert!(codec.stats().bad_checksum >= 1);
}

#[test]
fn keep_alive_throttle_and_errors() {
    let mut input = encode_keep_alive();
    input.extend(encode_reply(OP_READ_TAG_ID_MULTIPLE, 0x0504, &[]));
    input.extend(encode_reply(OP_SET_REGION, 0x0105, &[]));
    let events = decode_all(&mut MercuryCodec::new(), &input);
    assert_eq!(events[0], ReaderEvent::KeepAlive);
    assert!(matches!(
        events[1],
        ReaderEvent::Warning { code: 0x0504, .. }
    ));
    let ReaderEvent::Error { code, message } = &events[2] else {
        panic!("{events:?}");
    };
    assert_eq!(*code, 0x0105);
    assert!(message.contains("invalid parameter value"), "{message}");
}

#[test]
fn version_reply_decodes() {
    let version = VersionInfo {
        bootloader: [0x12, 0x08, 0x00, 0x30],
        hardware: [0x18, 0x00, 0x00, 0x01],
        firmware_date: [0x20, 0x15, 0x04, 0x20],
        firmware: [0x01, 0x09, 0x00, 0x02],
        protocols: 0x10,
    };
    let frame = encode_version_reply(&version);
    assert_eq!(frame[1], 20);
    assert_eq!(parse_version(&frame[5..25]), Some(version));
    let events = decode_all(&mut MercuryCodec::new(), &frame);
    let [ReaderEvent::Info(info)] = events.as_slice() else {
        panic!("{events:?}");
    };
    assert_eq!(info.firmware.as_deref(), Some("01.09.00.02 (20150420)"));
    assert_eq!(info.hardware.as_deref(), Some("18.00.00.01"));
}

#[test]
fn tag_buffer_reply_yields_every_tag() {
    let second = TagRecord {
        epc: bytes("3074257BF7194E4000001A85"),
        antenna: 0x22,
        ..documented_record()
    }
    .with_valid_crc();
    let frame = encode_tag_buffer_reply(&[documented_record(), second]);
    let events = decode_all(&mut MercuryCodec::new(), &frame);
    assert_eq!(events.len(), 2);
    let ReaderEvent::Tag(tag) = &events[1] else {
        panic!("{events:?}");
    };
    assert_eq!(tag.antenna, 2);
    assert_eq!(tag.tag_crc_ok, Some(true));
    let empty = encode_tag_buffer_reply(&[]);
    assert_eq!(
        decode_all(&mut MercuryCodec::new(), &empty),
        vec![ReaderEvent::NoTag]
    );
}

#[test]
fn sync_read_reply_and_acks() {
    let mut input = encode_reply(OP_READ_TAG_ID_MULTIPLE, 0, &[0x00, 0x00, 0x13, 0x05]);
    input.extend(encode_reply(
        OP_MULTI_PROTOCOL_TAG_OP,
        0,
        &[0x00, 0x00, 0x02],
    ));
    let events = decode_all(&mut MercuryCodec::new(), &input);
    assert_eq!(
        events,
        vec![
            ReaderEvent::Ack { command: 0x22 },
            ReaderEvent::Ack { command: 0x2F }
        ]
    );
}

#[test]
fn garbage_and_corruption_resync() {
    let mut input = bytes("FF FF 00 12 FF 01");
    input.extend(bytes(RECORD));
    let mut corrupt = bytes(RECORD);
    corrupt[46] ^= 0x40;
    input.extend(corrupt);
    input.extend(bytes("13 37"));
    input.extend(bytes(RECORD));
    let mut codec = MercuryCodec::new();
    assert_eq!(decode_all(&mut codec, &input).len(), 2);
    assert!(codec.stats().bad_checksum >= 1);
    assert_eq!(codec.stats().frames, 2);
}

#[test]
fn split_at_every_boundary() {
    let mut stream = bytes(RECORD);
    stream.extend(encode_keep_alive());
    for cut in 0..=stream.len() {
        let (events, _) = decode_split_at(&mut MercuryCodec::new(), &stream, cut);
        assert_eq!(events.len(), 2, "cut at {cut}");
    }
}

#[test]
fn host_commands_are_parsed_for_the_simulator() {
    let mut buf = BytesMut::from(&encode_stop_continuous_read()[..]);
    buf.extend_from_slice(&encode_get_version()[..3]);
    let command = next_host_command(&mut buf).unwrap();
    assert_eq!(command.opcode, OP_MULTI_PROTOCOL_TAG_OP);
    assert_eq!(&command.data[..], &[0x00, 0x00, 0x02]);
    assert_eq!(next_host_command(&mut buf), None);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill(chunks in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..80), 0..32)) {
        let (most_buffered, rest) = feed_chunks(&mut MercuryCodec::new(), &chunks);
        prop_assert!(most_buffered < MAX_FRAME);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn arbitrary_valid_frames_never_panic(opcode in any::<u8>(), status in any::<u16>(),
        data in proptest::collection::vec(any::<u8>(), 0..255)) {
        // Well-framed but arbitrary payloads exercise the payload parsers.
        let _ = decode_all(&mut MercuryCodec::new(), &encode_reply(opcode, status, &data));
    }

    #[test]
    fn record_round_trip(rssi in any::<i8>(), ant in 0x11u8..=0x44, freq in 860_000u32..960_000,
        words in 1usize..=15, seed in any::<u8>()) {
        let epc: Vec<u8> = (0..words * 2).map(|i| seed.wrapping_mul(i as u8 + 1)).collect();
        let record = TagRecord {
            rssi_dbm: rssi, antenna: ant, frequency_khz: freq, epc: epc.clone(),
            pc: ((words as u16) << 11), ..documented_record()
        }.with_valid_crc();
        let events = decode_all(&mut MercuryCodec::new(), &encode_continuous_record(&record));
        prop_assert_eq!(events, vec![ReaderEvent::Tag(TagRead {
            epc, pc: Some(record.pc), rssi_dbm: Some(i16::from(rssi)),
            antenna: antenna_port(ant), frequency_khz: Some(freq), tag_crc_ok: Some(true),
        })]);
    }
}
