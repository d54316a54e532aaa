//! Encoded changes and bundles: decoding with checksums, hashes as hex, what a change touches.

use automerge::{Change, ChangeHash};

use super::*;

/// Hex form of a change hash (for JSON, logs, SQLite).
pub fn hash_to_hex(hash: &ChangeHash) -> String {
    hex::encode(hash.0)
}

/// Parses the hex form of a change hash.
pub fn hash_from_hex(text: &str) -> Option<ChangeHash> {
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    Some(ChangeHash(bytes))
}

/// The map keys the operations of `encoded` write (`None` if one does not decode): lets a
/// reader recompute only what a change can have touched.
pub fn touched_keys<B: AsRef<[u8]>>(encoded: &[B]) -> Option<std::collections::BTreeSet<String>> {
    let mut keys = std::collections::BTreeSet::new();
    for change in decode_changes(encoded).ok()? {
        for op in change.decode().operations {
            if let automerge::legacy::Key::Map(key) = op.key {
                keys.insert(key.to_string());
            }
        }
    }
    Some(keys)
}

pub(super) fn decode_changes<B: AsRef<[u8]>>(encoded: &[B]) -> Result<Vec<Change>, DocError> {
    encoded
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            decode_change(bytes.as_ref())
                .map_err(|reason| DocError::MalformedChange { index, reason })
        })
        .collect()
}

/// Decodes one change and verifies its chunk checksum. `Change::try_from` does not check
/// the checksum (bytes 4..8, the first four bytes of the change hash), so without this a
/// flipped bit in, say, the actor would pass as a different, well-formed change.
pub(super) fn decode_change(bytes: &[u8]) -> Result<Change, String> {
    let change = Change::try_from(bytes).map_err(|e| e.to_string())?;
    if bytes.get(4..8) != change.hash().0.get(..4) {
        return Err("checksum does not match the change's contents".into());
    }
    Ok(change)
}

pub(super) fn decode_bundle(bundle: &[u8]) -> Result<Vec<Change>, DocError> {
    let malformed = |reason: String| DocError::MalformedChange { index: 0, reason };
    if bundle.is_empty() {
        return Ok(Vec::new());
    }
    // `Bundle::try_from` does not verify the chunk checksum, a load does, before anything
    // else. The throwaway load then fails for the missing dependencies (a bundle never
    // holds the genesis), which is not a fault of the bytes; only load errors are.
    if let Err(AutomergeError::Load(e)) = Automerge::load(bundle) {
        return Err(malformed(e.to_string()));
    }
    automerge::Bundle::try_from(bundle)
        .map_err(|e| malformed(e.to_string()))?
        .to_changes()
        .map_err(|e| malformed(e.to_string()))
}
