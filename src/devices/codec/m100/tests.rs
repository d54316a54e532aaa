//! M100 vectors from PROTOCOLS.md §4a (including a published wrong checksum), resync over
//! garbage, corruption and oversized lengths, and property tests over arbitrary bytes.

use bytes::BytesMut;
use proptest::prelude::*;

use super::frame::checksum;
use super::*;
use crate::devices::codec::gen2::pc_for_epc;
use crate::devices::codec::test_support::{bytes, decode_all, decode_split_at, feed_chunks};
use crate::devices::codec::{ReaderEvent, ReaderInfo, Region, TagRead};

const CANONICAL: &str = "BB 02 22 00 11 C9 34 00 30 75 1F EB 70 5C 59 04 E3 D5 0D 70 3A 76 EF 7E";
const YRM100: &str = "BB 02 22 00 11 D6 34 00 E2 80 11 70 40 00 02 1D 35 AE 40 08 D4 44 C4 7E";
const TDS: &str = "BB 02 22 00 11 C9 30 00 30 74 25 7B F7 19 4E 40 00 00 1A 85 AA F9 52 7E";

#[test]
fn command_vectors_byte_for_byte() {
    assert_eq!(
        encode_get_info(InfoKind::Hardware),
        bytes("BB 00 03 00 01 00 04 7E")
    );
    assert_eq!(encode_single_poll(), bytes("BB 00 22 00 00 22 7E"));
    assert_eq!(
        encode_multi_poll(10_000),
        bytes("BB 00 27 00 03 22 27 10 83 7E")
    );
    assert_eq!(encode_stop_multi_poll(), bytes("BB 00 28 00 00 28 7E"));
    assert_eq!(
        encode_set_region(Region::Eu).unwrap(),
        bytes("BB 00 07 00 01 03 0B 7E")
    );
    assert_eq!(
        encode_set_region(Region::Us).unwrap(),
        bytes("BB 00 07 00 01 02 0A 7E")
    );
    assert_eq!(encode_get_tx_power(), bytes("BB 00 B7 00 00 B7 7E"));
    assert_eq!(
        encode_set_tx_power(2000).unwrap(),
        bytes("BB 00 B6 00 02 07 D0 8F 7E")
    );
    assert!(encode_set_tx_power(5000).is_err());
    assert!(encode_set_region(Region::Jp).is_err());
}

#[test]
fn reply_vectors_decode() {
    let mut codec = M100Codec::new();
    assert_eq!(
        decode_all(&mut codec, &bytes("BB 01 28 00 01 00 2A 7E")),
        vec![ReaderEvent::Ack { command: 0x28 }]
    );
    assert_eq!(
        decode_all(&mut codec, &bytes("BB 01 B7 00 02 0A 28 EC 7E")),
        vec![ReaderEvent::Info(ReaderInfo {
            power_centi_dbm: Some(2600),
            ..ReaderInfo::default()
        })]
    );
    assert_eq!(
        decode_all(&mut codec, &bytes("BB 01 FF 00 01 15 16 7E")),
        vec![ReaderEvent::NoTag]
    );
    assert_eq!(codec.stats().frames, 3);
    assert_eq!(codec.stats().bad_checksum, 0);
}

#[test]
fn reader_side_encoders_match_vectors() {
    assert_eq!(
        encode_ack(CMD_STOP_MULTI_POLL),
        bytes("BB 01 28 00 01 00 2A 7E")
    );
    assert_eq!(
        encode_tx_power_response(2600),
        bytes("BB 01 B7 00 02 0A 28 EC 7E")
    );
    assert_eq!(encode_error(0x15), bytes("BB 01 FF 00 01 15 16 7E"));
    let epc = bytes("30751FEB705C5904E3D50D70");
    assert_eq!(encode_tag_notification(-55, 0x3400, &epc), bytes(CANONICAL));
    let epc = bytes("E28011704000021D35AE4008");
    assert_eq!(encode_tag_notification(-42, 0x3400, &epc), bytes(YRM100));
    let epc = bytes("3074257BF7194E4000001A85");
    assert_eq!(encode_tag_notification(-55, 0x3000, &epc), bytes(TDS));
}

#[test]
fn canonical_notification_decodes() {
    let events = decode_all(&mut M100Codec::new(), &bytes(CANONICAL));
    assert_eq!(
        events,
        vec![ReaderEvent::Tag(TagRead {
            epc: bytes("30751FEB705C5904E3D50D70"),
            pc: Some(0x3400),
            rssi_dbm: Some(-55),
            antenna: 1,
            frequency_khz: None,
            tag_crc_ok: Some(true),
        })]
    );
}

#[test]
fn yrm100_and_tds_notifications_decode() {
    let mut input = bytes(YRM100);
    input.extend(bytes(TDS));
    let events = decode_all(&mut M100Codec::new(), &input);
    let [ReaderEvent::Tag(first), ReaderEvent::Tag(second)] = events.as_slice() else {
        panic!("expected two tags, got {events:?}");
    };
    assert_eq!(first.rssi_dbm, Some(-42));
    assert_eq!(first.epc, bytes("E28011704000021D35AE4008"));
    assert_eq!(first.tag_crc_ok, Some(true));
    assert_eq!(second.pc, Some(0x3000));
    assert_eq!(second.tag_crc_ok, Some(true));
}

#[test]
fn wrong_public_checksum_is_rejected_and_fixed_one_accepted() {
    // Module-info reply "M100 26dBm V1.0": one doc prints checksum 0x22, the right one is 0x92.
    let wrong = bytes("BB 01 03 00 10 00 4D 31 30 30 20 32 36 64 42 6D 20 56 31 2E 30 22 7E");
    let right = bytes("BB 01 03 00 10 00 4D 31 30 30 20 32 36 64 42 6D 20 56 31 2E 30 92 7E");
    let mut codec = M100Codec::new();
    assert!(decode_all(&mut codec, &wrong).is_empty());
    assert_eq!(codec.stats().bad_checksum, 1);
    assert_eq!(codec.stats().frames, 0);
    assert_eq!(
        decode_all(&mut codec, &right),
        vec![ReaderEvent::Info(ReaderInfo {
            hardware: Some("M100 26dBm V1.0".into()),
            ..ReaderInfo::default()
        })]
    );
    assert_eq!(
        encode_info_response(InfoKind::Hardware, "M100 26dBm V1.0"),
        right
    );
}

#[test]
fn software_version_and_region_replies_decode() {
    let mut input = bytes("BB 01 03 00 07 01 56 32 2E 33 2E 31 54 7E");
    input.extend(bytes("BB 01 08 00 01 03 0D 7E"));
    let events = decode_all(&mut M100Codec::new(), &input);
    assert_eq!(
        events,
        vec![
            ReaderEvent::Info(ReaderInfo {
                firmware: Some("V2.3.1".into()),
                ..ReaderInfo::default()
            }),
            ReaderEvent::Info(ReaderInfo {
                region: Some(Region::Eu),
                ..ReaderInfo::default()
            }),
        ]
    );
}

#[test]
fn tag_crc_mismatch_is_flagged_not_dropped() {
    let mut frame = bytes(CANONICAL);
    frame[20] ^= 0xFF; // tag CRC low byte
    let len = frame.len();
    frame[len - 2] = checksum(&frame[1..len - 2]);
    let events = decode_all(&mut M100Codec::new(), &frame);
    assert!(matches!(
        events.as_slice(),
        [ReaderEvent::Tag(TagRead {
            tag_crc_ok: Some(false),
            ..
        })]
    ));
}

#[test]
fn garbage_before_and_between_frames_is_skipped() {
    let mut input = bytes("00 7E BB BB 13 37");
    input.extend(bytes(CANONICAL));
    input.extend(bytes("BB 7E 55"));
    input.extend(bytes(YRM100));
    let mut codec = M100Codec::new();
    let events = decode_all(&mut codec, &input);
    assert_eq!(events.len(), 2);
    assert_eq!(codec.stats().garbage_bytes, 9);
}

#[test]
fn corrupted_checksum_then_good_frame() {
    let mut bad = bytes(CANONICAL);
    bad[22] ^= 0x01;
    bad.extend(bytes(YRM100));
    let mut codec = M100Codec::new();
    let events = decode_all(&mut codec, &bad);
    assert_eq!(events.len(), 1);
    assert_eq!(codec.stats().bad_checksum, 1);
    assert_eq!(codec.stats().frames, 1);
}

#[test]
fn oversized_length_is_counted_and_skipped() {
    let mut input = bytes("BB 02 22 FF FF");
    input.extend(bytes(CANONICAL));
    let mut codec = M100Codec::new();
    assert_eq!(decode_all(&mut codec, &input).len(), 1);
    assert_eq!(codec.stats().oversized, 1);
}

#[test]
fn split_at_every_boundary() {
    let mut stream = bytes(CANONICAL);
    stream.extend(bytes(YRM100));
    for cut in 0..=stream.len() {
        let (events, rest) = decode_split_at(&mut M100Codec::new(), &stream, cut);
        assert_eq!(events.len(), 2, "cut at {cut}");
        assert!(rest.is_empty());
    }
}

#[test]
fn host_commands_are_parsed_for_the_simulator() {
    let mut buf = BytesMut::from(&bytes("00 BB 00 B6 00 02 07 D0 8F 7E BB 00 22")[..]);
    let command = next_host_command(&mut buf).unwrap();
    assert_eq!(command.command, CMD_SET_TX_POWER);
    assert_eq!(&command.params[..], &[0x07, 0xD0]);
    assert_eq!(next_host_command(&mut buf), None);
    assert_eq!(buf.len(), 3, "partial command kept");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill(chunks in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
        let (most_buffered, rest) = feed_chunks(&mut M100Codec::new(), &chunks);
        prop_assert!(most_buffered < MAX_FRAME);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn notification_round_trip(rssi in any::<i8>(), words in 0usize..=31, seed in any::<u8>()) {
        let epc: Vec<u8> = (0..words * 2).map(|i| seed.wrapping_add(i as u8)).collect();
        let pc = pc_for_epc(&epc);
        let frame = encode_tag_notification(rssi, pc, &epc);
        let events = decode_all(&mut M100Codec::new(), &frame);
        prop_assert_eq!(events, vec![ReaderEvent::Tag(TagRead {
            epc, pc: Some(pc), rssi_dbm: Some(i16::from(rssi)), antenna: 1,
            frequency_khz: None, tag_crc_ok: Some(true),
        })]);
    }
}
