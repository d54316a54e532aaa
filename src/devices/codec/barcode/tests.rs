//! Barcode vectors from PROTOCOLS.md §1, line-ending leniency, STX/ETX recovery, overlong
//! scans, config strings, and property tests over arbitrary bytes.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;
use crate::devices::codec::test_support::decode_all;

/// The scans `codec` decodes from `input`, including at end of stream.
fn decoded_scans(codec: &mut BarcodeCodec, input: &[u8]) -> Vec<Vec<u8>> {
    decode_all(codec, input)
        .into_iter()
        .map(|frame| frame.data)
        .collect()
}

fn crlf() -> BarcodeCodec {
    BarcodeCodec::new(BarcodeFraming::lines(b"\r\n"))
}

const GS1_128: &[u8] = b"]C10107032069804988100329\x1d15210526";

#[test]
fn documented_byte_streams() {
    let vectors: [(&[u8], &[u8]); 3] = [
        (b"]E05901234123457\r\n", b"]E05901234123457"),
        (b"]E496385074\r", b"]E496385074"),
        (
            b"]C10107032069804988100329\x1d15210526\r\n",
            b"]C10107032069804988100329\x1d15210526",
        ),
    ];
    for (wire, scan) in vectors {
        assert_eq!(decoded_scans(&mut crlf(), wire), vec![scan.to_vec()]);
    }
    let stx = hex::decode("0235393031323334313233343537030D").unwrap();
    let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b"\r"));
    assert_eq!(
        decoded_scans(&mut codec, &stx),
        vec![b"5901234123457".to_vec()]
    );
    assert_eq!(codec.stats().garbage_bytes, 0);
}

#[test]
fn any_line_ending_ends_a_scan_when_configured_for_crlf() {
    let input = b"111\r222\n333\r\n\r\n\n444\r\n";
    assert_eq!(
        decoded_scans(&mut crlf(), input),
        vec![
            b"111".to_vec(),
            b"222".to_vec(),
            b"333".to_vec(),
            b"444".to_vec()
        ]
    );
}

#[test]
fn partial_frames_wait_for_more() {
    let mut codec = crlf();
    let mut buf = BytesMut::from(&b"]E0590123"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"4123457\r\n");
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(BarcodeFrame {
            data: b"]E05901234123457".to_vec()
        })
    );
}

#[test]
fn gs_inside_data_is_kept() {
    let mut framed = GS1_128.to_vec();
    framed.extend_from_slice(b"\r\n");
    assert_eq!(decoded_scans(&mut crlf(), &framed), vec![GS1_128.to_vec()]);
}

#[test]
fn overlong_lines_are_dropped_up_to_the_next_terminator() {
    let framing = BarcodeFraming {
        max_len: 8,
        ..BarcodeFraming::lines(b"\r\n")
    };
    let mut codec = BarcodeCodec::new(framing);
    let mut buf = BytesMut::from(&b"1234567890123"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty(), "memory is bounded while discarding");
    buf.extend_from_slice(b"4567\r\nOK\r\n123456789\r\n");
    let mut out = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        out.push(frame.data);
    }
    assert_eq!(out, vec![b"OK".to_vec()]);
    assert_eq!(codec.stats().overlong, 2);
}

#[test]
fn stx_mode_skips_stray_bytes_and_record_suffix() {
    let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b"\r"));
    let input = b"zz\x02AAA\x03\r\n\x02BBB\x03\r";
    assert_eq!(
        decoded_scans(&mut codec, input),
        vec![b"AAA".to_vec(), b"BBB".to_vec()]
    );
    assert_eq!(codec.stats().garbage_bytes, 2);
}

#[test]
fn stx_mode_lost_etx_drops_partial_scan() {
    let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b""));
    assert_eq!(
        decoded_scans(&mut codec, b"\x02lost\x02kept\x03"),
        vec![b"kept".to_vec()]
    );
    assert_eq!(codec.stats().unterminated, 1);
}

#[test]
fn prefix_is_stripped_inside_stx() {
    let framing = BarcodeFraming {
        prefix: b"#".to_vec(),
        ..BarcodeFraming::stx_etx(b"\r\n")
    };
    let wire = framing.frame(b"]E496385074");
    assert_eq!(wire, b"\x02#]E496385074\x03\r\n");
    assert_eq!(
        decoded_scans(&mut BarcodeCodec::new(framing), &wire),
        vec![b"]E496385074".to_vec()]
    );
}

#[test]
fn tab_and_custom_hex_suffixes() {
    let mut tab = BarcodeCodec::new(BarcodeFraming::from_config("", "tab", false, 64).unwrap());
    assert_eq!(
        decoded_scans(&mut tab, b"A\tB\t"),
        vec![b"A".to_vec(), b"B".to_vec()]
    );
    let mut eot = BarcodeCodec::new(BarcodeFraming::from_config("", "hex:04", false, 64).unwrap());
    assert_eq!(decoded_scans(&mut eot, b"A\r\x04"), vec![b"A\r".to_vec()]);
}

#[test]
fn no_delimiter_uses_idle_gap() {
    let mut codec = BarcodeCodec::new(BarcodeFraming::lines(b""));
    let mut buf = BytesMut::from(&b"5901234123457"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert_eq!(
        codec.take_pending(&mut buf),
        Some(BarcodeFrame {
            data: b"5901234123457".to_vec()
        })
    );
}

#[test]
fn config_strings() {
    assert_eq!(parse_suffix("CRLF").unwrap(), b"\r\n");
    assert_eq!(parse_suffix("hex:0d0a").unwrap(), b"\r\n");
    assert_eq!(parse_suffix("none").unwrap(), b"");
    assert!(matches!(
        parse_suffix("semicolon"),
        Err(FramingError::UnknownSuffix(_))
    ));
    assert!(matches!(
        parse_suffix("hex:0g"),
        Err(FramingError::BadHex(..))
    ));
    assert_eq!(parse_prefix("SCAN:").unwrap(), b"SCAN:");
    assert_eq!(
        BarcodeFraming::from_config("", "cr", false, 0),
        Err(FramingError::ZeroMaxLen)
    );
}

#[test]
fn encoder_round_trip() {
    let mut codec = BarcodeCodec::new(BarcodeFraming::stx_etx(b"\r"));
    let mut buf = BytesMut::new();
    codec
        .encode(
            BarcodeFrame {
                data: GS1_128.to_vec(),
            },
            &mut buf,
        )
        .unwrap();
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(BarcodeFrame {
            data: GS1_128.to_vec()
        })
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_overfill(stx in any::<bool>(),
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..32)) {
        let framing = BarcodeFraming { stx_etx: stx, max_len: 40, ..BarcodeFraming::lines(b"\r\n") };
        let mut codec = BarcodeCodec::new(framing);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                prop_assert!(!frame.data.is_empty() && frame.data.len() <= 40);
            }
            prop_assert!(buf.len() <= 42);
        }
        while codec.decode_eof(&mut buf).unwrap().is_some() {}
    }

    #[test]
    fn frame_round_trip(stx in any::<bool>(), scans in proptest::collection::vec(
        proptest::collection::vec(0x1Du8..0x7F, 1..30), 1..10)) {
        let framing = BarcodeFraming { stx_etx: stx, ..BarcodeFraming::lines(b"\r\n") };
        let wire: Vec<u8> = scans.iter().flat_map(|scan| framing.frame(scan)).collect();
        prop_assert_eq!(decoded_scans(&mut BarcodeCodec::new(framing), &wire), scans);
    }
}
