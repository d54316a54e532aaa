//! Sync messages as bytes on the wire: the binary envelope of one message ([`payload`]), and
//! what the store service and HQ share on top of it: turning document state into messages
//! that fit under the packet cap, and the counters both sides export.

pub mod payload;

use std::sync::atomic::{AtomicU64, Ordering};

use automerge::ChangeHash;

use crate::crdt::doc::{DocError, DocId, SyncDoc};
use payload::{MAX_HEADS, MAX_MESSAGE_BYTES, PayloadError, SyncMessage};

/// Room left in a message for the bundle after the envelope (generous).
const ENVELOPE_ROOM: usize = 1024;
/// Up to this many outbox changes go out one by one (live traffic); more as bundles.
pub const MAX_SINGLE_CHANGES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Doc(#[from] DocError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("one change alone is larger than a message ({0} bytes)")]
    ChangeTooLarge(usize),
}

/// Counters of sync traffic, exported as metrics.
#[derive(Debug, Default)]
pub struct WireMetrics {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    /// Payloads refused: malformed, oversized, wrong document, forged author.
    pub rejected: AtomicU64,
    /// Publishes the broker refused (PUBACK 135, not authorised).
    pub denied: AtomicU64,
}

impl WireMetrics {
    pub fn count_in(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_out(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_out.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub fn hashes_to_wire(hashes: &[ChangeHash]) -> Vec<[u8; 32]> {
    hashes.iter().map(|h| h.0).collect()
}

pub fn hashes_from_wire(hashes: &[[u8; 32]]) -> Vec<ChangeHash> {
    hashes.iter().map(|h| ChangeHash(*h)).collect()
}

/// A `Heads` message; a document with more heads than fit (many concurrent writers) sends
/// the first [`MAX_HEADS`]: a peer then merely asks for a little more than it needs.
pub fn heads_message(doc: &SyncDoc) -> SyncMessage {
    heads_message_of(doc.id(), doc.epoch(), &doc.heads())
}

/// [`heads_message`] from the heads alone (a node keeps only the heads of HQ's catalog; HQ
/// announces every stored document's heads without loading it).
pub fn heads_message_of(doc: &DocId, epoch: u32, heads: &[ChangeHash]) -> SyncMessage {
    let mut heads = hashes_to_wire(heads);
    heads.truncate(MAX_HEADS);
    SyncMessage::Heads {
        doc: doc.clone(),
        epoch,
        heads,
    }
}

/// A `Need` message asking for what `doc` lacks, answered on `reply_to`.
pub fn need_message(doc: &SyncDoc, reply_to: &str) -> SyncMessage {
    need_message_of(doc.id(), doc.epoch(), &doc.heads(), reply_to)
}

/// [`need_message`] from the heads alone.
pub fn need_message_of(
    doc: &DocId,
    epoch: u32,
    heads: &[ChangeHash],
    reply_to: &str,
) -> SyncMessage {
    let mut have = hashes_to_wire(heads);
    have.truncate(MAX_HEADS);
    SyncMessage::Need {
        doc: doc.clone(),
        epoch,
        have,
        reply_to: reply_to.to_owned(),
    }
}

/// The changes `hashes` of `doc` as encoded messages under the cap: a few as single
/// changes, more as bundles split in halves until each fits.
pub fn changes_messages(doc: &SyncDoc, hashes: &[ChangeHash]) -> Result<Vec<Vec<u8>>, WireError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    if hashes.len() <= MAX_SINGLE_CHANGES {
        let changes: Vec<Vec<u8>> = hashes.iter().filter_map(|h| doc.change_bytes(h)).collect();
        let messages = payload::split_changes(
            doc.id(),
            doc.epoch(),
            changes,
            MAX_MESSAGE_BYTES - ENVELOPE_ROOM,
        )?;
        return messages
            .iter()
            .map(|m| m.encode().map_err(WireError::from))
            .collect();
    }
    let mut out = Vec::new();
    bundle_into(doc, doc.id(), hashes, &mut out)?;
    Ok(out)
}

fn bundle_into(
    doc: &SyncDoc,
    id: &DocId,
    hashes: &[ChangeHash],
    out: &mut Vec<Vec<u8>>,
) -> Result<(), WireError> {
    let bundle = doc.bundle_of(hashes)?;
    if bundle.len() + ENVELOPE_ROOM <= MAX_MESSAGE_BYTES {
        let message = SyncMessage::Bundle {
            doc: id.clone(),
            epoch: doc.epoch(),
            bundle,
        };
        out.push(message.encode()?);
        return Ok(());
    }
    if hashes.len() == 1 {
        return Err(WireError::ChangeTooLarge(bundle.len()));
    }
    let (first, second) = hashes.split_at(hashes.len() / 2);
    bundle_into(doc, id, first, out)?;
    bundle_into(doc, id, second, out)
}

/// Everything a peer with `their_heads` lacks, as messages under the cap.
pub fn catch_up_messages(
    doc: &SyncDoc,
    their_heads: &[ChangeHash],
) -> Result<Vec<Vec<u8>>, WireError> {
    changes_messages(doc, &doc.hashes_since(their_heads))
}

/// Whether `heads` name a change `doc` does not have (so `doc` is behind).
pub fn is_behind(doc: &SyncDoc, heads: &[ChangeHash]) -> bool {
    heads.iter().any(|h| !doc.has_change(h))
}
