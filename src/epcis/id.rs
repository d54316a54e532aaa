//! The `eventID` of an exported event: a name-based UUID (RFC 9562 version 5) of the
//! identity of the source row, as `urn:uuid:…`. Pure.
//!
//! Why not the EPCIS 2.0 event hash (`ni:///sha-256;…?ver=CBV2.0`): that hash is defined
//! over the event's *content* after the CBV 2.0 canonicalisation (every field, normalised
//! URIs and times, sorted lists). An ID over content changes when the content does (a GLN
//! configured later, a new CBV mapping), so a re-publish after such a change would store the
//! same fact twice at HQ. The ID here is over the fact's identity, which never changes, and a
//! UUID claims nothing more than uniqueness; EPCIS 2.0 accepts any URI as `eventID`.

use sha1::{Digest, Sha1};

use super::event::{EventKind, Origin};

/// The namespace of storenode's EPCIS event UUIDs (a random UUID fixed once: changing it
/// would change every event's ID).
const NAMESPACE: [u8; 16] = [
    0x8c, 0x1f, 0x3e, 0x52, 0x6b, 0x0d, 0x4a, 0x9e, 0xb2, 0x47, 0x15, 0xd3, 0x90, 0x6e, 0xa4, 0x3b,
];

/// A version 5 UUID (SHA-1 of namespace and name, RFC 9562 §5.5), in its text form.
pub fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> String {
    let digest = Sha1::new()
        .chain_update(namespace)
        .chain_update(name)
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A stable event ID, `urn:uuid:…`, over the identity of the source row (tenant, writer,
/// kind, row id, time): every re-export and re-publish of one fact carries the same ID and
/// HQ stores it once.
pub fn event_id(origin: &Origin, kind: EventKind, source_id: i64, at: &str) -> String {
    let mut name = Vec::new();
    for part in [
        origin.tenant.as_str(),
        origin.store_id.as_str(),
        origin.node_id.as_str(),
        kind.as_str(),
        &source_id.to_string(),
        at,
    ] {
        name.extend_from_slice(part.as_bytes());
        // A separator that cannot occur in the parts keeps ("a","bc") apart from ("ab","c").
        name.push(0);
    }
    format!("urn:uuid:{}", uuid_v5(&NAMESPACE, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v5_matches_the_rfc_namespace_example() {
        // The DNS namespace (RFC 9562 appendix A) and "python.org": the value Python's
        // `uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")` documents.
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        assert_eq!(
            uuid_v5(&dns, b"python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
    }

    #[test]
    fn event_id_is_a_stable_distinct_uuid() {
        let o = Origin::new("acme", "s042", "lane1", None).unwrap();
        let a = event_id(&o, EventKind::Sale, 1, "2026-03-01T10:00:00.000Z");
        assert_eq!(
            a,
            event_id(&o, EventKind::Sale, 1, "2026-03-01T10:00:00.000Z")
        );
        // Not a look-alike of the CBV event hash: a plain UUID URN, version 5, RFC variant.
        let uuid = a.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "5");
        assert!("89ab".contains(&uuid[19..20]));
        for other in [
            event_id(&o, EventKind::Receipt, 1, "2026-03-01T10:00:00.000Z"),
            event_id(&o, EventKind::Sale, 2, "2026-03-01T10:00:00.000Z"),
            event_id(
                &Origin::new("acme", "s042", "lane2", None).unwrap(),
                EventKind::Sale,
                1,
                "2026-03-01T10:00:00.000Z",
            ),
        ] {
            assert_ne!(a, other);
        }
    }
}
