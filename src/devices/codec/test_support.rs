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

/// What `codec` decodes (without end of stream) when `stream` arrives in two reads split at
/// `cut`, and the bytes it leaves buffered.
pub fn decode_split_at<D>(codec: &mut D, stream: &[u8], cut: usize) -> (Vec<D::Item>, BytesMut)
where
    D: Decoder,
    D::Error: Debug,
{
    let (head, tail) = stream.split_at(cut);
    let mut buf = BytesMut::from(head);
    let mut items = Vec::new();
    while let Some(item) = codec.decode(&mut buf).unwrap() {
        items.push(item);
    }
    buf.extend_from_slice(tail);
    while let Some(item) = codec.decode(&mut buf).unwrap() {
        items.push(item);
    }
    (items, buf)
}

/// Feeds `chunks` one read at a time, decoding all it can after each, then ends the stream.
/// Returns the most bytes left buffered after any read, and what end of stream left behind.
pub fn feed_chunks<D>(codec: &mut D, chunks: &[Vec<u8>]) -> (usize, BytesMut)
where
    D: Decoder,
    D::Error: Debug,
{
    let mut buf = BytesMut::new();
    let mut most_buffered = 0;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while codec.decode(&mut buf).unwrap().is_some() {}
        most_buffered = most_buffered.max(buf.len());
    }
    while codec.decode_eof(&mut buf).unwrap().is_some() {}
    (most_buffered, buf)
}
