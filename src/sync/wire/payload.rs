//! Binary wire envelope of sync messages over MQTT (no JSON for changes).
//!
//! ```text
//! message   = version:u8 (=1) type:u8 doc epoch:u32be body
//! doc       = store_len:u8 store:utf8 kind:u8 (1 stock, 2 orders, 3 catalog)
//! Changes   = count:u16be { len:u32be bytes }*
//! Heads     = count:u16be hash:32*
//! Need      = count:u16be hash:32* reply_len:u16be reply_to:utf8
//! Epoch     = count:u16be cut_hash:32*          (epoch = the NEW epoch)
//! Bundle    = len:u32be bytes                   (one compressed automerge bundle)
//! ```
//! Decoding is strict: caps on message size, change count and head count, no trailing
//! bytes, and nothing is preallocated from a length prefix: a vector only grows as the
//! bytes behind it are actually read, so a lying prefix cannot make us allocate.

use crate::crdt::doc::{DocId, DocKind, MAX_STORE_ID_LEN};

/// Wire format version.
pub const VERSION: u8 = 1;
/// Largest message accepted or produced (bytes). Configure the MQTT client's maximum packet
/// size above this (rumqttc's default is 10 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most changes in one message.
pub const MAX_CHANGES: usize = 4096;
/// Most heads in one message.
pub const MAX_HEADS: usize = 256;
/// Longest MQTT response topic accepted.
pub const MAX_REPLY_TO: usize = 512;

const TYPE_CHANGES: u8 = 1;
const TYPE_HEADS: u8 = 2;
const TYPE_NEED: u8 = 3;
const TYPE_EPOCH: u8 = 4;
const TYPE_BUNDLE: u8 = 5;

/// Why a payload could not be decoded or encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("message is {0} bytes, more than the {MAX_MESSAGE_BYTES}-byte cap")]
    TooLarge(usize),
    #[error("unsupported wire version {0}")]
    Version(u8),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("unknown document kind {0}")]
    UnknownKind(u8),
    #[error("message ends early while reading {0}")]
    Truncated(&'static str),
    #[error("{what}: {count} is more than the cap of {cap}")]
    TooMany {
        what: &'static str,
        count: usize,
        cap: usize,
    },
    #[error("{0} is not valid")]
    Invalid(&'static str),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("a single change of {size} bytes does not fit a message of {max} bytes")]
    ChangeTooLarge { size: usize, max: usize },
}

/// A sync message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMessage {
    /// New changes of a document.
    Changes {
        doc: DocId,
        epoch: u32,
        changes: Vec<Vec<u8>>,
    },
    /// What the sender has (retained).
    Heads {
        doc: DocId,
        epoch: u32,
        heads: Vec<[u8; 32]>,
    },
    /// "I have these heads; send me what I lack to `reply_to`".
    Need {
        doc: DocId,
        epoch: u32,
        have: Vec<[u8; 32]>,
        reply_to: String,
    },
    /// HQ opened `epoch` (E+1) for `doc`, cut at `cut_heads` of E.
    EpochAnnounce {
        doc: DocId,
        epoch: u32,
        cut_heads: Vec<[u8; 32]>,
    },
    /// Many changes of a document as one compressed automerge bundle (catch-up after an
    /// offline period: far smaller than the same changes one by one).
    Bundle {
        doc: DocId,
        epoch: u32,
        bundle: Vec<u8>,
    },
}

impl SyncMessage {
    /// Encodes the message. Fails when it would break a cap (so it would not decode).
    pub fn encode(&self) -> Result<Vec<u8>, PayloadError> {
        let mut out = Vec::new();
        out.push(VERSION);
        let (kind, doc, epoch) = self.header();
        out.push(kind);
        put_doc(&mut out, doc)?;
        out.extend_from_slice(&epoch.to_be_bytes());
        match self {
            Self::Changes { changes, .. } => {
                put_count(&mut out, changes.len(), MAX_CHANGES, "changes")?;
                for change in changes {
                    let len = u32::try_from(change.len())
                        .map_err(|_| PayloadError::TooLarge(change.len()))?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(change);
                }
            }
            Self::Heads { heads, .. }
            | Self::EpochAnnounce {
                cut_heads: heads, ..
            } => {
                put_hashes(&mut out, heads)?;
            }
            Self::Need { have, reply_to, .. } => {
                put_hashes(&mut out, have)?;
                if reply_to.len() > MAX_REPLY_TO {
                    return Err(PayloadError::Invalid("reply_to"));
                }
                out.extend_from_slice(&(reply_to.len() as u16).to_be_bytes());
                out.extend_from_slice(reply_to.as_bytes());
            }
            Self::Bundle { bundle, .. } => {
                let len = u32::try_from(bundle.len())
                    .map_err(|_| PayloadError::TooLarge(bundle.len()))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bundle);
            }
        }
        if out.len() > MAX_MESSAGE_BYTES {
            return Err(PayloadError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Decodes one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(PayloadError::TooLarge(bytes.len()));
        }
        let mut r = Reader { rest: bytes };
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(PayloadError::Version(version));
        }
        let kind = r.u8("type")?;
        let doc = r.doc()?;
        let epoch = r.u32("epoch")?;
        let message = match kind {
            TYPE_CHANGES => Self::Changes {
                doc,
                epoch,
                changes: r.changes()?,
            },
            TYPE_HEADS => Self::Heads {
                doc,
                epoch,
                heads: r.hashes()?,
            },
            TYPE_NEED => Self::Need {
                doc,
                epoch,
                have: r.hashes()?,
                reply_to: r.reply_to()?,
            },
            TYPE_EPOCH => Self::EpochAnnounce {
                doc,
                epoch,
                cut_heads: r.hashes()?,
            },
            TYPE_BUNDLE => Self::Bundle {
                doc,
                epoch,
                bundle: r.bundle()?,
            },
            other => return Err(PayloadError::UnknownType(other)),
        };
        if !r.rest.is_empty() {
            return Err(PayloadError::TrailingBytes(r.rest.len()));
        }
        Ok(message)
    }

    fn header(&self) -> (u8, &DocId, u32) {
        match self {
            Self::Changes { doc, epoch, .. } => (TYPE_CHANGES, doc, *epoch),
            Self::Heads { doc, epoch, .. } => (TYPE_HEADS, doc, *epoch),
            Self::Need { doc, epoch, .. } => (TYPE_NEED, doc, *epoch),
            Self::EpochAnnounce { doc, epoch, .. } => (TYPE_EPOCH, doc, *epoch),
            Self::Bundle { doc, epoch, .. } => (TYPE_BUNDLE, doc, *epoch),
        }
    }
}

/// Splits `changes` into `Changes` messages of at most `max_bytes` encoded bytes each
/// (e.g. the MQTT maximum packet minus topic and properties), keeping their order.
pub fn split_changes(
    doc: &DocId,
    epoch: u32,
    changes: Vec<Vec<u8>>,
    max_bytes: usize,
) -> Result<Vec<SyncMessage>, PayloadError> {
    let max_bytes = max_bytes.min(MAX_MESSAGE_BYTES);
    let overhead = header_len(doc) + 2;
    let mut messages = Vec::new();
    let mut current: Vec<Vec<u8>> = Vec::new();
    let mut size = overhead;
    for change in changes {
        let entry = 4 + change.len();
        if overhead + entry > max_bytes {
            return Err(PayloadError::ChangeTooLarge {
                size: change.len(),
                max: max_bytes,
            });
        }
        if size + entry > max_bytes || current.len() == MAX_CHANGES {
            messages.push(changes_message(doc, epoch, std::mem::take(&mut current)));
            size = overhead;
        }
        size += entry;
        current.push(change);
    }
    if !current.is_empty() {
        messages.push(changes_message(doc, epoch, current));
    }
    Ok(messages)
}

fn changes_message(doc: &DocId, epoch: u32, changes: Vec<Vec<u8>>) -> SyncMessage {
    SyncMessage::Changes {
        doc: doc.clone(),
        epoch,
        changes,
    }
}

/// version + type + doc + epoch.
fn header_len(doc: &DocId) -> usize {
    2 + 1 + doc.store.len() + 1 + 4
}

fn kind_code(kind: DocKind) -> u8 {
    match kind {
        DocKind::Stock => 1,
        DocKind::Orders => 2,
        DocKind::Catalog => 3,
    }
}

fn put_doc(out: &mut Vec<u8>, doc: &DocId) -> Result<(), PayloadError> {
    if doc.store.is_empty() || doc.store.len() > MAX_STORE_ID_LEN {
        return Err(PayloadError::Invalid("store id"));
    }
    out.push(doc.store.len() as u8);
    out.extend_from_slice(doc.store.as_bytes());
    out.push(kind_code(doc.kind));
    Ok(())
}

fn put_count(
    out: &mut Vec<u8>,
    count: usize,
    cap: usize,
    what: &'static str,
) -> Result<(), PayloadError> {
    if count > cap {
        return Err(PayloadError::TooMany { what, count, cap });
    }
    out.extend_from_slice(&(count as u16).to_be_bytes());
    Ok(())
}

fn put_hashes(out: &mut Vec<u8>, hashes: &[[u8; 32]]) -> Result<(), PayloadError> {
    put_count(out, hashes.len(), MAX_HEADS, "heads")?;
    for hash in hashes {
        out.extend_from_slice(hash);
    }
    Ok(())
}

/// A cursor over untrusted bytes; every read checks the length first.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PayloadError> {
        if self.rest.len() < n {
            return Err(PayloadError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PayloadError> {
        let bytes = self.take(N, what)?;
        bytes.try_into().map_err(|_| PayloadError::Truncated(what))
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PayloadError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, PayloadError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PayloadError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn count(&mut self, cap: usize, what: &'static str) -> Result<usize, PayloadError> {
        let count = usize::from(self.u16(what)?);
        if count > cap {
            return Err(PayloadError::TooMany { what, count, cap });
        }
        Ok(count)
    }

    fn doc(&mut self) -> Result<DocId, PayloadError> {
        let len = usize::from(self.u8("store id length")?);
        let store = std::str::from_utf8(self.take(len, "store id")?)
            .map_err(|_| PayloadError::Invalid("store id"))?;
        let kind = match self.u8("document kind")? {
            1 => DocKind::Stock,
            2 => DocKind::Orders,
            3 => DocKind::Catalog,
            other => return Err(PayloadError::UnknownKind(other)),
        };
        DocId::new(store, kind).map_err(|_| PayloadError::Invalid("store id"))
    }

    fn bundle(&mut self) -> Result<Vec<u8>, PayloadError> {
        let len = usize::try_from(self.u32("bundle length")?)
            .map_err(|_| PayloadError::Truncated("bundle"))?;
        Ok(self.take(len, "bundle")?.to_vec())
    }

    fn changes(&mut self) -> Result<Vec<Vec<u8>>, PayloadError> {
        let count = self.count(MAX_CHANGES, "changes")?;
        let mut changes = Vec::new();
        for _ in 0..count {
            let len = usize::try_from(self.u32("change length")?)
                .map_err(|_| PayloadError::Truncated("change"))?;
            changes.push(self.take(len, "change")?.to_vec());
        }
        Ok(changes)
    }

    fn hashes(&mut self) -> Result<Vec<[u8; 32]>, PayloadError> {
        let count = self.count(MAX_HEADS, "heads")?;
        let mut hashes = Vec::new();
        for _ in 0..count {
            hashes.push(self.array::<32>("head")?);
        }
        Ok(hashes)
    }

    fn reply_to(&mut self) -> Result<String, PayloadError> {
        let len = usize::from(self.u16("reply_to length")?);
        if len > MAX_REPLY_TO {
            return Err(PayloadError::Invalid("reply_to"));
        }
        let text = std::str::from_utf8(self.take(len, "reply_to")?)
            .map_err(|_| PayloadError::Invalid("reply_to"))?;
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc() -> DocId {
        DocId::new("s001", DocKind::Stock).unwrap()
    }

    #[test]
    fn heads_message_has_the_documented_layout() {
        let msg = SyncMessage::Heads {
            doc: doc(),
            epoch: 2,
            heads: vec![[0xab; 32]],
        };
        let bytes = msg.encode().unwrap();
        let mut expected = vec![1, 2, 4, b's', b'0', b'0', b'1', 1, 0, 0, 0, 2, 0, 1];
        expected.extend_from_slice(&[0xab; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(SyncMessage::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn lying_length_prefixes_are_rejected() {
        let msg = SyncMessage::Changes {
            doc: doc(),
            epoch: 1,
            changes: vec![vec![1, 2, 3]],
        };
        let mut bytes = msg.encode().unwrap();
        // Change length claims 4 GiB.
        let at = header_len(&doc()) + 2;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            SyncMessage::decode(&bytes),
            Err(PayloadError::Truncated("change"))
        );
        let mut many = msg.encode().unwrap();
        many[header_len(&doc())..header_len(&doc()) + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(
            SyncMessage::decode(&many),
            Err(PayloadError::TooMany { .. })
        ));
        let mut trailing = msg.encode().unwrap();
        trailing.push(0);
        assert_eq!(
            SyncMessage::decode(&trailing),
            Err(PayloadError::TrailingBytes(1))
        );
        assert_eq!(SyncMessage::decode(&[2]), Err(PayloadError::Version(2)));
    }

    #[test]
    fn split_respects_the_byte_cap_and_order() {
        let changes: Vec<Vec<u8>> = (0..50_u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let messages = split_changes(&doc(), 1, changes.clone(), 1024).unwrap();
        assert!(messages.len() > 1);
        let mut rejoined = Vec::new();
        for message in &messages {
            let bytes = message.encode().unwrap();
            assert!(bytes.len() <= 1024, "{} bytes", bytes.len());
            let SyncMessage::Changes { changes, .. } = SyncMessage::decode(&bytes).unwrap() else {
                panic!("not a changes message");
            };
            rejoined.extend(changes);
        }
        assert_eq!(rejoined, changes);
        assert_eq!(
            split_changes(&doc(), 1, vec![vec![0; 2000]], 1024),
            Err(PayloadError::ChangeTooLarge {
                size: 2000,
                max: 1024
            })
        );
        assert!(split_changes(&doc(), 1, vec![], 1024).unwrap().is_empty());
    }

    fn arb_doc() -> impl Strategy<Value = DocId> {
        (
            "[a-z0-9._-]{1,64}",
            prop::sample::select(vec![DocKind::Stock, DocKind::Orders, DocKind::Catalog]),
        )
            .prop_map(|(store, kind)| DocId { store, kind })
    }

    fn arb_hashes() -> impl Strategy<Value = Vec<[u8; 32]>> {
        prop::collection::vec(any::<[u8; 32]>(), 0..8)
    }

    fn arb_message() -> impl Strategy<Value = SyncMessage> {
        prop_oneof![
            (
                arb_doc(),
                any::<u32>(),
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)
            )
                .prop_map(|(doc, epoch, changes)| SyncMessage::Changes {
                    doc,
                    epoch,
                    changes
                }),
            (arb_doc(), any::<u32>(), arb_hashes())
                .prop_map(|(doc, epoch, heads)| SyncMessage::Heads { doc, epoch, heads }),
            (arb_doc(), any::<u32>(), arb_hashes(), "[ -~]{0,80}").prop_map(
                |(doc, epoch, have, reply_to)| SyncMessage::Need {
                    doc,
                    epoch,
                    have,
                    reply_to
                }
            ),
            (arb_doc(), any::<u32>(), arb_hashes()).prop_map(|(doc, epoch, cut_heads)| {
                SyncMessage::EpochAnnounce {
                    doc,
                    epoch,
                    cut_heads,
                }
            }),
            (
                arb_doc(),
                any::<u32>(),
                prop::collection::vec(any::<u8>(), 0..256)
            )
                .prop_map(|(doc, epoch, bundle)| SyncMessage::Bundle {
                    doc,
                    epoch,
                    bundle
                }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(msg in arb_message()) {
            let bytes = msg.encode().unwrap();
            prop_assert_eq!(SyncMessage::decode(&bytes).unwrap(), msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = SyncMessage::decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic_and_stay_within_the_input(
            msg in arb_message(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = msg.encode().unwrap();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(SyncMessage::Changes { changes, .. }) = SyncMessage::decode(&bytes) {
                // Decoded data never exceeds what the input carried.
                let total: usize = changes.iter().map(Vec::len).sum();
                prop_assert!(total <= bytes.len());
            }
        }
    }
}
