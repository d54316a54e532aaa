//! The node's vital signs beyond its components: free disk, days left on the store
//! certificate, the clock. Pure rules (a figure in, a state and advice out) and their
//! Prometheus rendering; [`super::watch`] measures the figures.

use serde::Serialize;

use super::State;

/// Below this the node is not ready: SQLite needs room for the WAL and new pages, and a
/// sale acknowledged must reach the disk.
pub const DISK_MIN_FREE_BYTES: u64 = 1024 * 1024;
/// Below this `diag status` warns (degraded, still ready).
pub const DISK_WARN_FREE_BYTES: u64 = 64 * 1024 * 1024;
/// A certificate with fewer days left is flagged (renewal takes a visit or a ticket).
pub const CERT_WARN_DAYS: i64 = 30;
/// A clock further off than this from NTP is flagged.
pub const CLOCK_MAX_OFFSET_MS: i64 = 60_000;

/// The figures as last measured; `None` while unknown (no certificate, no NTP client).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Vitals {
    pub disk_free_bytes: Option<u64>,
    pub cert_days_left: Option<i64>,
    /// From `timedatectl` (systemd-timesyncd or chrony behind it).
    pub clock_synchronized: Option<bool>,
    /// From `chronyc tracking`, when chrony runs.
    pub clock_offset_ms: Option<i64>,
}

/// A component state with its explanation, for [`super::Health::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub detail: String,
    /// Whether this component down makes the node not ready.
    pub critical: bool,
}

impl Verdict {
    fn new(state: State, detail: String, critical: bool) -> Self {
        Self {
            state,
            detail,
            critical,
        }
    }
}

pub fn disk(free: u64, dir: &str) -> Verdict {
    let human = crate::human::bytes(free);
    if free < DISK_MIN_FREE_BYTES {
        Verdict::new(
            State::Down,
            format!("disk full: {human} free on {dir}; free space (old backups?) to sell again"),
            true,
        )
    } else if free < DISK_WARN_FREE_BYTES {
        Verdict::new(
            State::Degraded,
            format!("low disk: {human} free on {dir}"),
            true,
        )
    } else {
        Verdict::new(State::Ok, format!("{human} free on {dir}"), true)
    }
}

/// Not critical: sales go on without HQ, but sync stops once the broker refuses it.
pub fn certificate(days: i64, file: &str) -> Verdict {
    if days < 0 {
        Verdict::new(
            State::Down,
            format!("{file} expired {} days ago: HQ sync stops; renew it", -days),
            false,
        )
    } else if days < CERT_WARN_DAYS {
        Verdict::new(
            State::Degraded,
            format!("{file} expires in {days} days: renew it"),
            false,
        )
    } else {
        Verdict::new(State::Ok, format!("expires in {days} days"), false)
    }
}

/// Flagged, never refused: a shop that cannot sell because of a clock doubt loses more than
/// a sale dated wrong, which HQ can still see by its receive time. `None`: nothing known.
pub fn clock(synchronized: Option<bool>, offset_ms: Option<i64>) -> Option<Verdict> {
    if let Some(offset) = offset_ms
        && offset.abs() > CLOCK_MAX_OFFSET_MS
    {
        let (secs, way) = (
            offset.abs() / 1000,
            if offset > 0 { "slow" } else { "fast" },
        );
        return Some(Verdict::new(
            State::Degraded,
            format!(
                "clock {} {way} against NTP: sales are dated wrong; check chrony",
                crate::human::duration(secs.unsigned_abs())
            ),
            false,
        ));
    }
    match synchronized {
        Some(false) => Some(Verdict::new(
            State::Degraded,
            "clock not synchronized (NTP): sale times may be wrong; check timedatectl".into(),
            false,
        )),
        Some(true) => Some(Verdict::new(State::Ok, "synchronized (NTP)".into(), false)),
        None => None,
    }
}

/// Appends the vitals and readiness to `/metrics` (gauges left out while unknown).
pub fn render(vitals: &Vitals, ready: bool, out: &mut String) {
    let gauge = |out: &mut String, name: &str, help: &str, value: Option<i64>| {
        if let Some(value) = value {
            crate::metrics::gauge(out, name, help, value);
        }
    };
    gauge(
        out,
        "storenode_ready",
        "1 while the node can sell (the store takes writes, the disk has room).",
        Some(i64::from(ready)),
    );
    gauge(
        out,
        "storenode_disk_free_bytes",
        "Free bytes on the database's file system.",
        vitals
            .disk_free_bytes
            .map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
    );
    gauge(
        out,
        "storenode_certificate_days_left",
        "Days until the store's client certificate expires (negative: expired).",
        vitals.cert_days_left,
    );
    gauge(
        out,
        "storenode_clock_synchronized",
        "1 when the system clock is NTP-synchronized.",
        vitals.clock_synchronized.map(i64::from),
    );
    gauge(
        out,
        "storenode_clock_offset_milliseconds",
        "System clock offset from NTP (chrony), positive when slow.",
        vitals.clock_offset_ms,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk(0, "/d").state, State::Down);
        assert!(disk(0, "/d").detail.contains("disk full"));
        assert_eq!(disk(10 * 1024 * 1024, "/d").state, State::Degraded);
        assert_eq!(disk(1 << 30, "/d").state, State::Ok);
    }

    #[test]
    fn certificate_thresholds() {
        assert_eq!(certificate(-1, "c").state, State::Down);
        let soon = certificate(9, "node.pem");
        assert_eq!(soon.state, State::Degraded);
        assert!(soon.detail.contains("expires in 9 days"), "{}", soon.detail);
        assert_eq!(certificate(200, "c").state, State::Ok);
    }

    #[test]
    fn clock_skew_of_two_days_is_flagged() {
        let two_days = 2 * 86_400_000;
        let verdict = clock(Some(true), Some(two_days)).unwrap();
        assert_eq!(verdict.state, State::Degraded);
        assert!(verdict.detail.contains("2d"), "{}", verdict.detail);
        assert_eq!(clock(Some(false), None).unwrap().state, State::Degraded);
        assert_eq!(clock(Some(true), Some(5)).unwrap().state, State::Ok);
        assert!(clock(None, None).is_none());
    }

    #[test]
    fn unknown_figures_are_left_out_of_metrics() {
        let mut out = String::new();
        render(&Vitals::default(), false, &mut out);
        assert!(out.contains("storenode_ready 0"), "{out}");
        assert!(!out.contains("storenode_disk_free_bytes"), "{out}");
        let mut out = String::new();
        let vitals = Vitals {
            disk_free_bytes: Some(5),
            cert_days_left: Some(9),
            ..Vitals::default()
        };
        render(&vitals, true, &mut out);
        assert!(out.contains("storenode_certificate_days_left 9"), "{out}");
        assert!(out.contains("storenode_disk_free_bytes 5"), "{out}");
    }
}
