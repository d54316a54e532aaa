//! Ready means able to sell. Measures what the components alone cannot say: whether the
//! store really takes a write now (a real write through the writer thread, not the last
//! error), free disk, days left on the store certificate and the clock's NTP state. Each
//! turns into a component (so `/readyz`, `diag status` and `systemctl status` show it with
//! its reason) and a figure in [`super::vitals::Vitals`] (for `/metrics`); a change is
//! logged once, when it happens.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::health::vitals::{self, Verdict};
use crate::health::{Health, State};
use crate::store::Store;
use crate::tls::TlsFiles;
use crate::tls::x509::Identity;

/// The write probe runs at most this often, however often `/readyz` is asked.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// A write taking longer than this means the writer is stuck (lock held by another process).
pub const PROBE_DEADLINE: Duration = Duration::from_secs(3);
/// Certificate, clock and disk are measured this often in the background.
pub const WATCH_EVERY: Duration = Duration::from_secs(60);
const COMMAND_DEADLINE: Duration = Duration::from_secs(2);

/// What the watcher measures.
#[derive(Clone)]
pub struct Watched {
    pub store: Store,
    pub health: std::sync::Arc<Health>,
    /// The store's TLS identity, when sync uses TLS.
    pub tls: Option<TlsFiles>,
    /// The name the certificate must carry.
    pub store_id: String,
}

/// Records `verdict` as component `name`; logs once when its state changes.
pub fn apply(health: &Health, name: &str, verdict: &Verdict) {
    if !health.set(
        name,
        verdict.state,
        verdict.detail.clone(),
        verdict.critical,
    ) {
        return;
    }
    match verdict.state {
        State::Ok => tracing::info!(component = name, detail = %verdict.detail, "recovered"),
        State::Degraded => {
            tracing::warn!(component = name, detail = %verdict.detail, "needs attention")
        }
        State::Down => tracing::error!(component = name, detail = %verdict.detail, "down"),
    }
}

/// The write probe and free disk, at most once per [`PROBE_EVERY`].
pub async fn check_store(store: &Store, health: &Health) {
    if !health.probe_due(PROBE_EVERY) {
        return;
    }
    let db = store.path().to_path_buf();
    if let Some(free) = free_bytes(&db) {
        health.update_vitals(|v| v.disk_free_bytes = Some(free));
        let dir = db.parent().unwrap_or(Path::new("/"));
        apply(
            health,
            "disk",
            &vitals::disk(free, &dir.display().to_string()),
        );
    }
    let verdict = match tokio::time::timeout(PROBE_DEADLINE, store.probe_write()).await {
        Ok(Ok(())) => Verdict {
            state: State::Ok,
            detail: "takes writes".into(),
            critical: true,
        },
        Ok(Err(e)) => refused(&e.to_string(), &db),
        Err(_) => refused("database is locked (the write did not finish in 3 s)", &db),
    };
    apply(health, "store", &verdict);
}

/// The store refusing writes: why, and what to do, from SQLite's message and the files'
/// owners.
pub fn refused(error: &str, db: &Path) -> Verdict {
    Verdict {
        state: State::Down,
        detail: explain_refusal(error, db),
        critical: true,
    }
}

pub fn explain_refusal(error: &str, db: &Path) -> String {
    // SQLite's messages are stable ("attempt to write a readonly database", "database or
    // disk is full", "database is locked"); the codes are lost once a batch fails as a whole.
    let text = error.to_ascii_lowercase();
    let foreign = crate::ownership::process_uid().and_then(|me| {
        let files = crate::ownership::database_files(db);
        crate::ownership::foreign_owner(&files, me).map(|(file, owner)| (file, owner, me))
    });
    if let Some((file, owner, me)) = foreign
        && (text.contains("readonly") || text.contains("read-only"))
    {
        return format!(
            "writes refused: {} belongs to {}, the node runs as {}; fix: chown {} {}* (no restart needed)",
            file.display(),
            crate::ownership::describe_uid(owner),
            crate::ownership::describe_uid(me),
            crate::ownership::user_name(me).unwrap_or_else(|| me.to_string()),
            db.display()
        );
    }
    if text.contains("readonly") || text.contains("read-only") {
        format!(
            "writes refused: {} or its file system is read-only (failing SD card? see dmesg)",
            db.display()
        )
    } else if text.contains("full") {
        "writes refused: disk full; free space (old backups?) and sales resume".into()
    } else if text.contains("locked") || text.contains("busy") {
        "writes refused: database locked by another process (sqlite3 shell? a copy?); close it"
            .into()
    } else {
        format!("writes refused: {error}")
    }
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The identity checks of `provision` and `config check` on the configured files, so a
/// certificate replaced under a running node is judged too.
pub fn check_identity_files(files: &TlsFiles, store_id: &str) -> Result<Identity, String> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    crate::tls::x509::check_identity(
        &read(&files.ca_cert)?,
        &read(&files.client_cert_chain)?,
        &read(&files.client_key)?,
        store_id,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| format!("{}: {e}", files.client_cert_chain.display()))
}

/// Days left on the first certificate of a PEM file; `None` when it does not parse.
fn certificate_days_left(file: &Path) -> Option<i64> {
    let pem = std::fs::read(file).ok()?;
    let der = rustls_pemfile::certs(&mut pem.as_slice()).next()?.ok()?;
    let validity = crate::tls::x509::validity(&der).ok()?;
    Some(validity.days_left(time::OffsetDateTime::now_utc()))
}

async fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_DEADLINE, run)
        .await
        .ok()?
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// NTP state from `timedatectl` and, with chrony, the offset from `chronyc -c tracking`
/// (field 5: system time offset in seconds). Neither present: unknown, nothing flagged.
async fn clock_state() -> (Option<bool>, Option<i64>) {
    let synchronized = command_output("timedatectl", &["show", "-p", "NTPSynchronized", "--value"])
        .await
        .and_then(|v| match v.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        });
    let offset = command_output("chronyc", &["-c", "tracking"])
        .await
        .and_then(|csv| parse_chrony_offset_ms(&csv));
    (synchronized, offset)
}

fn parse_chrony_offset_ms(csv: &str) -> Option<i64> {
    let seconds: f64 = csv.split(',').nth(4)?.trim().parse().ok()?;
    Some((seconds * 1000.0).round() as i64)
}

/// Certificate and clock (the store check runs with it).
pub async fn check_all(watched: &Watched) {
    let health = &watched.health;
    check_store(&watched.store, health).await;
    if let Some(files) = &watched.tls {
        // Days left even when the identity fails (an expired certificate fails its chain).
        let days = certificate_days_left(&files.client_cert_chain);
        health.update_vitals(|v| v.cert_days_left = days);
        let verdict = match (check_identity_files(files, &watched.store_id), days) {
            (Ok(_), Some(days)) => {
                vitals::certificate(days, &files.client_cert_chain.display().to_string())
            }
            (Ok(_), None) => vitals::certificate(-1, "the certificate"),
            (Err(e), _) => Verdict {
                state: State::Down,
                detail: format!("{e}; HQ sync cannot work"),
                critical: false,
            },
        };
        apply(health, "certificate", &verdict);
    }
    let (synchronized, offset) = clock_state().await;
    health.update_vitals(|v| {
        v.clock_synchronized = synchronized;
        v.clock_offset_ms = offset;
    });
    if let Some(verdict) = vitals::clock(synchronized, offset) {
        apply(health, "clock", &verdict);
    }
}

/// Measures everything every [`WATCH_EVERY`] until `shutdown`.
pub async fn run(watched: Watched, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => check_all(&watched).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why_and_what_to_do() {
        let db = Path::new("/nonexistent/store.db");
        assert!(explain_refusal("sqlite: database or disk is full", db).contains("disk full"));
        assert!(explain_refusal("database is locked", db).contains("another process"));
        assert!(explain_refusal("attempt to write a readonly database", db).contains("read-only"));
    }

    #[test]
    fn chrony_offset() {
        let csv = "C0A80001,192.168.0.1,3,1700000000.1,172800.5,0.0001,-0.002,1.1,0.1,0.2,0.01,0.001,64.0,Normal";
        assert_eq!(parse_chrony_offset_ms(csv), Some(172_800_500));
        assert_eq!(parse_chrony_offset_ms("garbage"), None);
    }

    #[test]
    fn free_bytes_of_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("store.db")).is_some());
    }
}
