//! Unit tests of the node's sync wiring: background loading, install, health.

use std::sync::Mutex;
use std::time::Instant;

use super::load::{fingerprint, install, load_snapshot};
use super::*;
use crate::crdt::doc::{DocId, DocKind};
use crate::store::StoreOptions;
use crate::store::ledger::{self, MovementKind};
use crate::sync::local;
use crate::sync::persist;

fn open(dir: &std::path::Path) -> (Store, SyncSetup) {
    let (setup, hook) = SyncSetup::new("s1");
    let store = Store::open(
        StoreOptions {
            path: dir.join("store.db"),
            max_batch: 64,
            writer_id: "s1.lane1".into(),
        },
        hook,
    )
    .unwrap();
    (store, setup)
}

async fn sell(store: &Store, units: i64) {
    store
        .write(move |conn| {
            let m = ledger::Movement {
                sku: "MILK",
                kind: MovementKind::Sale,
                on_hand_delta: -units,
                reserved_delta: 0,
                ref_type: "t",
                ref_id: "1",
                terminal: "pos1",
            };
            ledger::record(conn, &m, "now")?;
            Ok(())
        })
        .await
        .unwrap();
}

/// What the publisher does before it publishes: the node's hook defers own movements.
async fn record_backlog(store: &Store, slot: &DocsSlot) {
    let docs = slot.get().unwrap().clone();
    store
        .write(move |conn| {
            hook::record_backlog(conn, &docs)
                .map_err(|e| crate::store::StoreError::Inconsistent(e.to_string()))?;
            Ok(())
        })
        .await
        .unwrap();
}

fn writer() -> WriterId {
    WriterId::new("s1.lane1").unwrap()
}

fn own_total(slot: &DocsSlot) -> i64 {
    let docs = local::lock(slot.get().unwrap());
    docs.stock()
        .writer_totals(&writer())
        .get("MILK")
        .copied()
        .unwrap_or(0)
}

async fn outbox_len(store: &Store) -> u64 {
    store
        .read(|conn| Ok(persist::outbox_len(conn).unwrap()))
        .await
        .unwrap()
}

/// Sales before the load, while it runs (between the read and the install) and after
/// it each reach the document exactly once.
#[tokio::test]
async fn sales_before_and_during_the_background_load_reach_the_document_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A first life with sync: some history in the document.
        let (store, setup) = open(dir.path());
        load_and_install(&store, &setup.slot, "s1", writer(), false)
            .await
            .unwrap();
        sell(&store, 1).await;
        assert_eq!(
            own_total(&setup.slot),
            0,
            "the node's hook defers to the publisher"
        );
        record_backlog(&store, &setup.slot).await;
        assert_eq!(own_total(&setup.slot), -1);
        store.close().await;
    }
    let (store, setup) = open(dir.path());
    // Before the documents are loaded the hook does nothing.
    sell(&store, 2).await;
    assert!(setup.slot.get().is_none());
    assert_eq!(outbox_len(&store).await, 1, "only the first life's change");
    // The read half of the load, then a sale, then the install.
    let (docs, seen) = store
        .read(|conn| Ok(load_snapshot(conn, "s1", writer()).unwrap()))
        .await
        .unwrap();
    sell(&store, 4).await;
    let slot = setup.slot.clone();
    store
        .write(move |conn| {
            assert_eq!(fingerprint(conn).unwrap(), seen, "the hook wrote nothing");
            let _ = slot.set(Arc::new(Mutex::new(docs)));
            Ok(())
        })
        .await
        .unwrap();
    record_backlog(&store, &setup.slot).await;
    assert_eq!(
        own_total(&setup.slot),
        -7,
        "the first record after the install caught up"
    );
    sell(&store, 8).await;
    record_backlog(&store, &setup.slot).await;
    assert_eq!(own_total(&setup.slot), -15);
    assert_eq!(outbox_len(&store).await, 3);
    store.close().await;

    // What is stored equals what was in memory: nothing recorded twice.
    let (store, setup) = open(dir.path());
    load_and_install(&store, &setup.slot, "s1", writer(), false)
        .await
        .unwrap();
    assert_eq!(own_total(&setup.slot), -15);
    let on_hand: i64 = store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT on_hand FROM stock_level WHERE sku = 'MILK'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(on_hand, -15);
    store.close().await;
}

/// Should the sync tables change between the read and the install, the install reloads
/// under the writer instead of installing the stale copy.
#[tokio::test]
async fn a_change_to_the_sync_tables_during_the_load_makes_the_install_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (store, setup) = open(dir.path());
    let (docs, seen) = store
        .read(|conn| Ok(load_snapshot(conn, "s1", writer()).unwrap()))
        .await
        .unwrap();
    assert_eq!(docs.epoch(), 0);
    store
        .write(|conn| {
            persist::state_set(conn, persist::KEY_EPOCH, 3).unwrap();
            Ok(())
        })
        .await
        .unwrap();
    install(&store, &setup.slot, "s1", writer(), (docs, seen), false)
        .await
        .unwrap();
    let (epoch, id) = {
        let installed = local::lock(setup.slot.get().unwrap());
        (installed.epoch(), installed.stock().core().id().clone())
    };
    assert_eq!(epoch, 3, "reloaded, not the stale copy");
    assert_eq!(id, DocId::new("s1", DocKind::Stock).unwrap());
    store.close().await;
}

fn metrics_text(sync: &NodeSync) -> String {
    let mut out = String::new();
    sync.metrics_fn()(&mut out);
    out
}

/// While the documents load: the node is ready (sync is not critical), `/readyz` and
/// `diag sync` say "loading", the metrics say 0 and show no outbox; then the service runs.
#[tokio::test(flavor = "current_thread")]
async fn health_metrics_and_diag_say_loading_until_the_documents_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (store, setup) = open(dir.path());
    let health = Arc::new(Health::default());
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = SyncConfig {
        broker: crate::sync::config::BrokerConfig {
            host: "127.0.0.1".into(),
            port: unused.local_addr().unwrap().port(),
            tls: None,
        },
        resend_interval: Duration::from_millis(200),
        reconnect_max: Duration::from_millis(200),
        online_escrow_units: 0,
        lanes: None,
    };
    let sync = setup
        .start(&cfg, "t", "s1", "lane1", store.clone(), health.clone())
        .await
        .unwrap();
    // On this single-threaded runtime the loader has not run yet.
    let component = health.snapshot().remove(COMPONENT).unwrap();
    assert_eq!(component.state, State::Degraded);
    assert!(component.detail.contains("loading"), "{}", component.detail);
    assert!(!component.critical);
    assert!(health.ready());
    let text = metrics_text(&sync);
    assert!(text.contains("storenode_sync_documents_loaded 0"), "{text}");
    assert!(!text.contains("storenode_sync_outbox_length"), "{text}");
    let report = SyncInspector(sync.service().clone()).report().await;
    assert_eq!(report["documents"], "loading");

    let deadline = Instant::now() + Duration::from_secs(30);
    while !sync.service().is_loaded() {
        assert!(Instant::now() < deadline, "documents never loaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = metrics_text(&sync);
    assert!(text.contains("storenode_sync_documents_loaded 1"), "{text}");
    assert!(text.contains("storenode_sync_documents_load_ms"), "{text}");
    let report = SyncInspector(sync.service().clone()).report().await;
    assert_eq!(report["documents"], "loaded");
    assert_eq!(report["epoch"], 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while health.snapshot()[COMPONENT].detail.contains("loading") {
        assert!(Instant::now() < deadline, "health still says loading");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sync.stop().await;
    store.close().await;
}
