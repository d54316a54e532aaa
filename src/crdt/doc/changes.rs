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

/// The map-key paths the operations of `encoded` (one change, or a bundle of them) write in
/// `doc`, which has applied them: per operation, the keys from the root down to the object it
/// writes in, then its own key (a path stops at the first list element on the way). `None`
/// if the bytes do not decode, or an operation's object is not in `doc` (the change waits
/// for a dependency): the caller then redoes everything. Lets a reader recompute only what a
/// write can have changed, at a cost in proportion to the change, not to the document.
pub fn touched_paths(doc: &SyncDoc, encoded: &[u8], bundle: bool) -> Option<BTreeSet<Vec<String>>> {
    // The bytes were checked when `doc` applied them: no second throwaway load of a bundle
    // for its checksum (`decode_bundle`), which costs as much as the bundle.
    let changes = if bundle {
        automerge::Bundle::try_from(encoded)
            .ok()?
            .to_changes()
            .ok()?
    } else {
        vec![Change::try_from(encoded).ok()?]
    };
    let mut objects: std::collections::HashMap<automerge::legacy::ObjectId, Path> =
        std::collections::HashMap::new();
    let mut paths = BTreeSet::new();
    for change in changes {
        for op in change.decode().operations {
            let object = match objects.get(&op.obj) {
                Some(path) => path.clone(),
                None => {
                    let path = path_of(doc.automerge(), &op.obj)?;
                    objects.insert(op.obj.clone(), path.clone());
                    path
                }
            };
            let mut path = object.keys;
            if let (true, automerge::legacy::Key::Map(key)) = (object.whole, &op.key) {
                path.push(key.to_string());
            }
            paths.insert(path);
        }
    }
    Some(paths)
}

/// An object's map keys from the root, and whether they reach it (no list on the way).
#[derive(Clone)]
struct Path {
    keys: Vec<String>,
    whole: bool,
}

/// The path of `obj` in `doc` (`None`: not an object of `doc`).
fn path_of(doc: &Automerge, obj: &automerge::legacy::ObjectId) -> Option<Path> {
    let automerge::legacy::ObjectId::Id(id) = obj else {
        return Some(Path {
            keys: Vec::new(),
            whole: true,
        });
    };
    // The actor's index is a hint automerge checks; `usize::MAX` makes it look the actor up.
    let exid = automerge::ObjId::Id(id.0, id.1.clone(), usize::MAX);
    let mut keys = Vec::new();
    for (_, prop) in doc.parents(&exid).ok()?.try_path()? {
        match prop {
            automerge::Prop::Map(key) => keys.push(key),
            automerge::Prop::Seq(_) => {
                return Some(Path { keys, whole: false });
            }
        }
    }
    Some(Path { keys, whole: true })
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
