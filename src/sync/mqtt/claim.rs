//! One live box per writer: the retained status claim.
//!
//! Each incarnation of a lane publishes its retained status as `online {incarnation}
//! {started_ms}` and listens to its own status topic (each incarnation has its own MQTT
//! client id, so two boxes with the same writer id are connected side by side instead of
//! taking each other's session over and over). What it hears *live* (not a stored retained
//! message, which may be the stale claim of a predecessor that crashed) decides
//! ([`judge`]): a claim of an incarnation that started earlier means another box is live as
//! this writer, and this one, the later, refuses to sync; a claim of a later one, or an
//! `offline` (a refused clone leaving, or a predecessor's late last will), is answered by
//! publishing its own claim again, so the later box hears it and the status is right.

/// An incarnation's claim to be the live box of its writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub incarnation: String,
    /// Unix ms when this incarnation started: the earlier of two live claims wins.
    pub started_ms: i64,
}

/// What to do about a message heard on the own status topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The echo of this incarnation's own claim.
    Mine,
    /// An incarnation that started earlier is live: refuse to sync.
    Yield(Claim),
    /// Publish the own claim again (a later clone or an `offline` overwrote it).
    ClaimAgain,
    /// Nothing to do (a stored retained message, or a payload without a claim).
    Ignore,
}

impl Claim {
    pub fn encode(&self) -> Vec<u8> {
        format!("online {} {}", self.incarnation, self.started_ms).into_bytes()
    }

    /// `online {incarnation} {started_ms}`; `None` for anything else.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.split(' ');
        if parts.next()? != "online" {
            return None;
        }
        let incarnation = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let started_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            incarnation,
            started_ms,
        })
    }

    fn is_earlier_than(&self, other: &Claim) -> bool {
        (self.started_ms, &self.incarnation) < (other.started_ms, &other.incarnation)
    }
}

/// HQ's retained status while connected (a lane's carries its [`Claim`] instead).
pub const ONLINE: &[u8] = b"online";
/// The last will of every writer, also published by a graceful stop.
pub const OFFLINE: &[u8] = b"offline";

/// Whether a status payload says online (a lane's carries its [`Claim`]).
pub fn is_online(payload: &[u8]) -> bool {
    payload == ONLINE || payload.starts_with(b"online ")
}

/// Decides about `payload` heard on the own status topic (`retained`: a stored message).
pub fn judge(mine: &Claim, payload: &[u8], retained: bool) -> Verdict {
    if retained {
        return Verdict::Ignore;
    }
    if payload == OFFLINE {
        return Verdict::ClaimAgain;
    }
    match Claim::parse(payload) {
        Some(claim) if claim == *mine => Verdict::Mine,
        Some(claim) if claim.is_earlier_than(mine) => Verdict::Yield(claim),
        Some(_) => Verdict::ClaimAgain,
        None => Verdict::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(inc: &str, started_ms: i64) -> Claim {
        Claim {
            incarnation: inc.into(),
            started_ms,
        }
    }

    #[test]
    fn claims_round_trip_and_garbage_is_no_claim() {
        let c = claim("00ff", 1_700_000_000_000);
        assert_eq!(Claim::parse(&c.encode()), Some(c));
        for bad in [
            &b"online"[..],
            b"online ",
            b"online a",
            b"online a b",
            b"online a 1 x",
        ] {
            assert_eq!(Claim::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Claim::parse(b"offline"), None);
    }

    #[test]
    fn of_two_live_boxes_the_later_yields_and_the_earlier_claims_again() {
        let early = claim("aa", 100);
        let late = claim("bb", 200);
        assert_eq!(
            judge(&late, &early.encode(), false),
            Verdict::Yield(early.clone())
        );
        assert_eq!(judge(&early, &late.encode(), false), Verdict::ClaimAgain);
        assert_eq!(judge(&early, &early.encode(), false), Verdict::Mine);
        // Same start: the incarnation decides, the same way on both boxes.
        let twin = claim("ab", 100);
        assert_eq!(
            judge(&twin, &early.encode(), false),
            Verdict::Yield(early.clone())
        );
        assert_eq!(judge(&early, &twin.encode(), false), Verdict::ClaimAgain);
    }

    #[test]
    fn a_stale_retained_claim_or_an_old_plain_status_is_ignored_and_offline_is_answered() {
        let me = claim("bb", 200);
        // A predecessor that crashed left its claim retained: not a live box.
        assert_eq!(
            judge(&me, &claim("aa", 100).encode(), true),
            Verdict::Ignore
        );
        assert_eq!(judge(&me, b"online", false), Verdict::Ignore);
        assert_eq!(judge(&me, b"offline", false), Verdict::ClaimAgain);
        assert_eq!(judge(&me, b"offline", true), Verdict::Ignore);
    }
}
