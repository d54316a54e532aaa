//! The simulators against the daemon's own decoders: every emitted scan and every intact
//! tag read decodes, exactly, from streams cut into uneven pieces; commands get replies.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::codec::Decoder;

use super::scanner::{GS, with_check_digit};
use super::*;
use crate::devices::codec::barcode::{BarcodeCodec, BarcodeFraming};
use crate::devices::codec::{
    ChafonLayout, ReaderCodec, ReaderCommands, ReaderEvent, ReaderProtocol, Region, chafon, m100,
    mercury,
};

/// Feeds `stream` in uneven pieces, as a serial port would deliver it.
fn decode_in_pieces<D: Decoder>(decoder: &mut D, stream: &[u8], seed: u64) -> Vec<D::Item>
where
    D::Error: std::fmt::Debug,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let take = rng.random_range(1..=rest.len().min(97));
        let (piece, tail) = rest.split_at(take);
        buf.extend_from_slice(piece);
        rest = tail;
        while let Some(item) = decoder.decode(&mut buf).unwrap() {
            items.push(item);
        }
    }
    while let Some(item) = decoder.decode_eof(&mut buf).unwrap() {
        items.push(item);
    }
    items
}

fn tags_of(events: &[ReaderEvent]) -> Vec<&[u8]> {
    events
        .iter()
        .filter_map(|event| match event {
            ReaderEvent::Tag(tag) => Some(tag.epc.as_slice()),
            _ => None,
        })
        .collect()
}

const PROTOCOLS: [ReaderProtocol; 5] = [
    ReaderProtocol::M100,
    ReaderProtocol::Mercury,
    ReaderProtocol::Chafon(ChafonLayout::Old),
    ReaderProtocol::Chafon(ChafonLayout::New),
    ReaderProtocol::Chafon(ChafonLayout::Auto),
];

#[test]
fn gs1_check_digits() {
    assert_eq!(with_check_digit(b"590123412345".to_vec()), b"5901234123457");
    assert_eq!(with_check_digit(b"9638507".to_vec()), b"96385074");
    assert_eq!(
        with_check_digit(b"0703206980498".to_vec()),
        b"07032069804988"
    );
}

#[test]
fn scanner_stream_decodes_to_exactly_the_emitted_scans() {
    for (framing, aim) in [
        (BarcodeFraming::lines(b"\r\n"), true),
        (BarcodeFraming::lines(b"\r"), false),
        (BarcodeFraming::stx_etx(b"\r"), true),
    ] {
        let mut sim = ScannerSim::new(framing.clone(), aim, 0.3, 7);
        let stream: Vec<u8> = (0..200).flat_map(|_| sim.next_chunk()).collect();
        let frames = decode_in_pieces(&mut BarcodeCodec::new(framing), &stream, 3);
        let scans: Vec<Vec<u8>> = frames.into_iter().map(|frame| frame.data).collect();
        assert_eq!(scans, sim.emitted());
        assert!(
            scans.iter().any(|scan| scan.contains(&GS)),
            "GS1-128 with GS present"
        );
        assert_eq!(scans.iter().all(|scan| scan.starts_with(b"]")), aim);
    }
}

#[test]
fn rfid_stream_decodes_to_exactly_the_valid_reads() {
    for (seed, protocol) in PROTOCOLS.into_iter().enumerate() {
        let tags = sample_epcs(40, seed as u64);
        let mut sim = RfidSim::new(protocol, tags.clone(), 5, 0.2, seed as u64);
        let stream: Vec<u8> = (0..20).flat_map(|_| sim.next_chunk()).collect();
        let mut codec = ReaderCodec::new(protocol);
        let events = decode_in_pieces(&mut codec, &stream, seed as u64);
        let reads = tags_of(&events);
        assert_eq!(reads.len() as u64, sim.valid_reads(), "{protocol}");
        assert!(reads.iter().all(|epc| tags.iter().any(|tag| tag == epc)));
        assert!(
            codec.stats().bad_checksum > 0,
            "{protocol}: noise was injected"
        );
        assert!(
            events
                .iter()
                .all(|event| !matches!(event, ReaderEvent::Error { .. })),
            "{protocol}: {events:?}"
        );
    }
}

#[test]
fn driver_commands_get_plausible_replies() {
    for protocol in PROTOCOLS {
        let tags = sample_epcs(3, 1);
        let mut sim = RfidSim::new(protocol, tags, 1, 0.0, 1);
        let mut host = protocol.init_sequence();
        host.push(protocol.get_firmware());
        host.push(protocol.set_power(2000).unwrap());
        host.push(protocol.set_region(Region::Us).unwrap());
        host.push(protocol.start_inventory());
        let wire: Vec<u8> = host.concat();
        // Split mid-frame to check the simulator buffers partial commands.
        let (head, tail) = wire.split_at(wire.len() / 2);
        let mut replies = sim.respond(head);
        replies.extend(sim.respond(tail));
        let mut codec = ReaderCodec::new(protocol);
        let events = decode_in_pieces(&mut codec, &replies, 9);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ReaderEvent::Info(info) if info.firmware.is_some())),
            "{protocol}: {events:?}"
        );
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, ReaderEvent::Error { .. })),
            "{protocol}: {events:?}"
        );
        if protocol.needs_polling() {
            assert_eq!(tags_of(&events).len(), 3, "{protocol}: inventory answered");
        } else {
            assert!(sim.is_streaming(), "{protocol}");
            let stop = protocol.stop_inventory().unwrap();
            let acks = decode_in_pieces(&mut codec, &sim.respond(&stop), 1);
            assert!(
                matches!(acks.as_slice(), [ReaderEvent::Ack { .. }]),
                "{acks:?}"
            );
            assert!(!sim.is_streaming());
        }
        assert_eq!(codec.stats().bad_checksum, 0);
    }
}

#[test]
fn mercury_sync_read_then_tag_buffer() {
    let mut sim = RfidSim::new(ReaderProtocol::Mercury, sample_epcs(4, 2), 1, 0.0, 2);
    let mut codec = ReaderCodec::new(ReaderProtocol::Mercury);
    let ack = sim.respond(&mercury::encode_read_tag_id_multiple(500));
    assert_eq!(
        decode_in_pieces(&mut codec, &ack, 1),
        vec![ReaderEvent::Ack { command: 0x22 }]
    );
    let buffer = sim.respond(&mercury::encode_get_tag_buffer());
    assert_eq!(tags_of(&decode_in_pieces(&mut codec, &buffer, 1)).len(), 4);
    assert_eq!(sim.valid_reads(), 4);
}

#[test]
fn empty_field_answers_no_tag_or_keep_alive() {
    for protocol in PROTOCOLS {
        let mut sim = RfidSim::new(protocol, Vec::new(), 1, 0.0, 3);
        let mut bytes = sim.respond(&m100::encode_single_poll());
        bytes.extend(sim.respond(&chafon::encode_inventory(chafon::BROADCAST)));
        bytes.extend(sim.next_chunk());
        let events = decode_in_pieces(&mut ReaderCodec::new(protocol), &bytes, 1);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ReaderEvent::NoTag | ReaderEvent::KeepAlive)),
            "{protocol}: {events:?}"
        );
    }
}

/// Decode throughput of an M100 notification stream. Run with
/// `cargo test --release -- --ignored --nocapture m100_decode_throughput`.
#[test]
#[ignore]
fn m100_decode_throughput() {
    let mut sim = RfidSim::new(ReaderProtocol::M100, sample_epcs(200, 5), 10, 0.01, 5);
    let stream: Vec<u8> = (0..100).flat_map(|_| sim.next_chunk()).collect();
    let mut codec = ReaderCodec::new(ReaderProtocol::M100);
    let start = std::time::Instant::now();
    let mut buf = BytesMut::new();
    let mut reads = 0u64;
    for piece in stream.chunks(64) {
        buf.extend_from_slice(piece);
        while let Some(event) = codec.decode(&mut buf).unwrap() {
            reads += u64::from(matches!(event, ReaderEvent::Tag(_)));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(reads, sim.valid_reads());
    println!(
        "m100 decode: {reads} reads, {} bytes in {elapsed:.3} s = {:.0} reads/s, {:.1} MB/s",
        stream.len(),
        reads as f64 / elapsed,
        stream.len() as f64 / elapsed / 1e6
    );
}
