//! Helpers shared by the codecs' unit tests.

use std::fmt::Debug;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Hex with spaces or newlines between bytes, as the vectors in PROTOCOLS.md are written.
pub fn bytes(hex_str: &str) -> Vec<u8> {
    hex::decode(hex_str.replace([' ', '\n'], "")).unwrap()
}

/// Everything `codec` decodes from `input`, including what it yields at end of stream.
pub fn decode_all<D>(codec: &mut D, input: &[u8]) -> Vec<D::Item>
where
    D: Decoder,
    D::Error: Debug,
{
    let mut buf = BytesMut::from(input);
    let mut items = Vec::new();
    while let Some(item) = codec.decode(&mut buf).unwrap() {
        items.push(item);
    }
    while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
        items.push(item);
    }
    items
}
