//! HQ reaches PostgreSQL over TLS, configured with libpq's options in its connection string,
//! and refuses a server whose certificate its CA did not sign. A real scratch cluster with
//! `ssl=on`, real Mosquitto, the real binary; every wait is bounded.

mod common;
mod sync_util;

use std::process::Command;
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::pki::Pki;
use storenode::hq::db::scratch::ScratchPostgres;
use sync_util::{BrokerAccess, HqNode, wait_for};

/// HQ's connections to database `hq` that are encrypted, and all of them, as the server sees
/// them (asked over a plain connection of its own).
fn hq_connections(pg: &ScratchPostgres) -> (i64, i64) {
    let url = pg.url("postgres");
    std::thread::spawn(move || {
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
        let row = admin
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
                 JOIN pg_stat_ssl s USING (pid) WHERE a.datname = 'hq'",
                &[],
            )
            .expect("pg_stat_ssl");
        (row.get(0), row.get(1))
    })
    .join()
    .expect("admin thread")
}

fn database_line(pg: &ScratchPostgres, ca: &std::path::Path) -> String {
    format!(
        "database = \"{} sslmode=verify-full sslrootcert={}\"\n",
        pg.url("hq"),
        ca.display()
    )
}

#[test]
fn hq_uses_tls_to_postgresql_and_refuses_an_unknown_server() {
    let pki = Pki::new("postgres");
    let pg = ScratchPostgres::start_with_tls(pki.server_cert(), pki.server_key())
        .expect("a scratch PostgreSQL with TLS (apt-get install postgresql)");
    pg.create_database("hq").expect("HQ's database");
    let broker = Mosquitto::start(MosquittoOptions::plain());
    let access = BrokerAccess::Plain {
        port: broker.port(),
    };

    let hq = HqNode::start(&access, &database_line(&pg, pki.ca_cert()));
    wait_for("HQ ready on PostgreSQL", Duration::from_secs(60), || {
        (hq.get_json("/readyz").0 == 200).then_some(())
    });
    let (encrypted, all) = hq_connections(&pg);
    assert!(all > 0, "HQ holds a connection to its database");
    assert_eq!(encrypted, all, "every HQ connection is encrypted");
    drop(hq);

    // The same server, trusted through another CA: HQ does not start, and says why.
    let stranger = Pki::new("stranger");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hq.toml");
    std::fs::write(
        &config,
        format!(
            "[hq]\ntenant = \"t\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\ntoken = \"{}\"\n{}{}",
            dir.path().display(),
            "x".repeat(32),
            access.toml(),
            database_line(&pg, stranger.ca_cert())
        ),
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_storenode"))
        .args(["--config", config.to_str().expect("utf-8 path"), "hq"])
        .output()
        .expect("run storenode hq");
    assert!(!out.status.success(), "HQ must not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("certificate"),
        "the error names the certificate: {stderr}"
    );
}
