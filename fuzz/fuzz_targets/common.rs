//! Shared by the targets: feeds bytes to a tokio-util decoder in chunks whose sizes come
//! from the input itself, so libFuzzer also explores how frames split across reads.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// One maximal frame of any protocol plus one chunk; more means unbounded buffering.
const MAX_BUFFERED: usize = 64 * 1024;

pub fn drain<D: Decoder>(codec: &mut D, data: &[u8]) {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
        assert!(
            buf.len() <= MAX_BUFFERED,
            "decoder buffered {} bytes",
            buf.len()
        );
    }
    let _ = codec.decode_eof(&mut buf);
}
