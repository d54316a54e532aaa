//! Chafon vectors from PROTOCOLS.md §4c (captured new-layout frames, one-tag replies in both
//! layouts), Auto layout detection, resync, and property tests over arbitrary bytes.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::devices::codec::test_support::{bytes, decode_all, decode_split_at, feed_chunks};
use crate::devices::codec::{ReaderEvent, ReaderInfo, Region};

fn epcs(events: &[ReaderEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            ReaderEvent::Tag(tag) => Some(hex::encode_upper(&tag.epc)),
            _ => None,
        })
        .collect()
}

const CAPTURE_1: &str = "15 00 01 03 01 01 0C E2 80 68 94 00 00 40 0A 9D 22 A9 EB 5C 70 D2";
const CAPTURE_2: &str = "15 00 01 03 01 01 0C 30 34 B7 08 AC 39 7E 00 00 00 06 49 42 1A B7";
const OLD_ONE_TAG: &str = "13 00 01 01 01 0C 30 74 25 7B F7 19 4E 40 00 00 1A 85 93 82";
const NEW_ONE_TAG: &str = "15 00 01 01 01 01 0C 30 74 25 7B F7 19 4E 40 00 00 1A 85 5C 7F BB";
const NO_TAG: &str = "05 00 01 FB F2 3D";

#[test]
fn command_vectors_byte_for_byte() {
    assert_eq!(encode_get_reader_info(BROADCAST), bytes("04 FF 21 19 95"));
    assert_eq!(encode_inventory(BROADCAST), bytes("04 FF 01 1B B4"));
    assert_eq!(encode_inventory(0x00), bytes("04 00 01 DB 4B"));
    assert_eq!(encode_get_reader_info(0x00), bytes("04 00 21 D9 6A"));
    assert_eq!(encode_response(0x00, 0x01, 0xFB, &[]), bytes(NO_TAG));
}

#[test]
fn setters_encode_documented_layouts() {
    let power = encode_set_power(0x00, 2600).unwrap();
    assert_eq!(&power[..4], &[0x05, 0x00, 0x2F, 26]);
    assert!(encode_set_power(0x00, 3100).is_err());
    let region = encode_set_region(0x00, Region::Us).unwrap();
    assert_eq!(&region[..5], &[0x06, 0x00, 0x22, 49, 0x80]);
    let region = encode_set_region(0x00, Region::Eu).unwrap();
    assert_eq!(&region[..5], &[0x06, 0x00, 0x22, 0x40 | 14, 0x00]);
    assert!(encode_set_region(0x00, Region::Jp).is_err());
    assert_eq!(
        &encode_set_scan_time(0x00, 10)[..4],
        &[0x05, 0x00, 0x25, 10]
    );
}

#[test]
fn captured_new_layout_frames_decode() {
    let mut input = bytes(CAPTURE_1);
    input.extend(bytes(CAPTURE_2));
    let mut codec = ChafonCodec::new(ChafonLayout::New);
    let events = decode_all(&mut codec, &input);
    assert_eq!(
        epcs(&events),
        vec!["E28068940000400A9D22A9EB", "3034B708AC397E0000000649"]
    );
    let ReaderEvent::Tag(tag) = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(tag.rssi_dbm, Some(-0x5C));
    assert_eq!(tag.antenna, 1);
    assert_eq!(codec.stats().frames, 2);
}

#[test]
fn old_and_new_one_tag_vectors_decode_in_their_layout() {
    let old = decode_all(
        &mut ChafonCodec::new(ChafonLayout::Old),
        &bytes(OLD_ONE_TAG),
    );
    assert_eq!(epcs(&old), vec!["3074257BF7194E4000001A85"]);
    let new = decode_all(
        &mut ChafonCodec::new(ChafonLayout::New),
        &bytes(NEW_ONE_TAG),
    );
    assert_eq!(epcs(&new), vec!["3074257BF7194E4000001A85"]);
    // The wrong layout does not invent tags: the frame is counted as unhandled.
    let mut codec = ChafonCodec::new(ChafonLayout::Old);
    assert!(epcs(&decode_all(&mut codec, &bytes(NEW_ONE_TAG))).is_empty());
    assert_eq!(codec.stats().unhandled, 1);
}

#[test]
fn auto_layout_detects_each_vector() {
    let mut codec = ChafonCodec::new(ChafonLayout::Auto);
    assert_eq!(epcs(&decode_all(&mut codec, &bytes(NEW_ONE_TAG))).len(), 1);
    assert_eq!(codec.effective_layout(), ChafonLayout::New);
    assert_eq!(epcs(&decode_all(&mut codec, &bytes(OLD_ONE_TAG))).len(), 1);
    assert_eq!(codec.effective_layout(), ChafonLayout::Old);
}

#[test]
fn encoders_reproduce_vectors() {
    let epc = bytes("3074257BF7194E4000001A85");
    let entry = InventoryEntry { epc, rssi: 0x5C };
    assert_eq!(
        encode_inventory_response(0, ChafonLayout::Old, 1, 1, std::slice::from_ref(&entry)),
        bytes(OLD_ONE_TAG)
    );
    assert_eq!(
        encode_inventory_response(0, ChafonLayout::New, 1, 1, &[entry]),
        bytes(NEW_ONE_TAG)
    );
}

#[test]
fn no_tag_and_status_errors() {
    let mut input = bytes(NO_TAG);
    input.extend(encode_response(0, CMD_SET_POWER, 0xFF, &[]));
    input.extend(encode_response(0, CMD_SET_POWER, STATUS_OK, &[]));
    let events = decode_all(&mut ChafonCodec::new(ChafonLayout::Old), &input);
    assert_eq!(events[0], ReaderEvent::NoTag);
    assert!(
        matches!(&events[1], ReaderEvent::Error { code: 0xFF, message } if message.contains("parameter error"))
    );
    assert_eq!(
        events[2],
        ReaderEvent::Ack {
            command: CMD_SET_POWER
        }
    );
}

#[test]
fn reader_info_round_trip() {
    let info = ChafonInfo {
        version: [3, 1],
        reader_type: 0x09,
        protocols: 0x03,
        max_fre: 49,
        min_fre: 0x80,
        power_dbm: 26,
        scan_time_100ms: 10,
    };
    let events = decode_all(
        &mut ChafonCodec::new(ChafonLayout::Old),
        &encode_reader_info_response(0, &info),
    );
    assert_eq!(
        events,
        vec![ReaderEvent::Info(ReaderInfo {
            firmware: Some("3.01".into()),
            hardware: Some("type 0x09".into()),
            manufacturer: None,
            power_centi_dbm: Some(2600),
            region: Some(Region::Us),
            scan_time_ms: Some(1000),
        })]
    );
}

#[test]
fn resync_after_garbage_and_bad_crc() {
    let mut input = bytes("00 01 FF 7E 13");
    input.extend(bytes(CAPTURE_1));
    let mut corrupt = bytes(CAPTURE_2);
    corrupt[10] ^= 0x01;
    input.extend(corrupt);
    input.extend(bytes(CAPTURE_2));
    let mut codec = ChafonCodec::new(ChafonLayout::New);
    let events = decode_all(&mut codec, &input);
    assert_eq!(epcs(&events).len(), 2);
    assert!(codec.stats().bad_checksum >= 1);
}

#[test]
fn split_at_every_boundary() {
    let mut stream = bytes(CAPTURE_1);
    stream.extend(bytes(NO_TAG));
    stream.extend(bytes(CAPTURE_2));
    for cut in 0..=stream.len() {
        let (events, _) = decode_split_at(&mut ChafonCodec::new(ChafonLayout::New), &stream, cut);
        assert_eq!(events.len(), 3, "cut at {cut}");
    }
}

#[test]
fn host_commands_are_parsed_for_the_simulator() {
    let mut buf = BytesMut::from(&bytes("00 04 FF 01 1B B4 04 00")[..]);
    let command = next_host_command(&mut buf).unwrap();
    assert_eq!((command.address, command.command), (0xFF, CMD_INVENTORY));
    assert_eq!(next_host_command(&mut buf), None);
    assert_eq!(buf.len(), 2);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill(layout in prop_oneof![
            Just(ChafonLayout::Old), Just(ChafonLayout::New), Just(ChafonLayout::Auto)],
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
        let (most_buffered, rest) = feed_chunks(&mut ChafonCodec::new(layout), &chunks);
        prop_assert!(most_buffered < MAX_FRAME);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn arbitrary_valid_frames_never_panic(command in any::<u8>(), status in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 0..250)) {
        let frame = encode_response(0, command, status, &data);
        let _ = decode_all(&mut ChafonCodec::new(ChafonLayout::Auto), &frame);
    }

    #[test]
    fn inventory_round_trip(new_layout in any::<bool>(), epcs_in in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..=31).prop_map(|mut v| { v.truncate(v.len() / 2 * 2); v }), 0..12),
        rssi in any::<u8>()) {
        let layout = if new_layout { ChafonLayout::New } else { ChafonLayout::Old };
        let entries: Vec<InventoryEntry> =
            epcs_in.iter().map(|epc| InventoryEntry { epc: epc.clone(), rssi }).collect();
        let fitted = entries_per_frame(layout, &entries);
        let frame = encode_inventory_response(0, layout, STATUS_INVENTORY_DONE, 1, &entries);
        let events = decode_all(&mut ChafonCodec::new(layout), &frame);
        let decoded: Vec<Vec<u8>> = events.iter().filter_map(|event| match event {
            ReaderEvent::Tag(tag) => Some(tag.epc.clone()), _ => None }).collect();
        prop_assert_eq!(decoded, epcs_in[..fitted].to_vec());
    }
}
