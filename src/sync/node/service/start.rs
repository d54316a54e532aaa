//! Start-up of the sync service: the transport's configuration (identity, TLS, status
//! claim, subscriptions), the links beside the documents, and the two tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::inbound::receive;
use super::outbound::publish_loop;
use super::{Ctx, ServiceError, Shared, SyncService};
use crate::crdt::catalog::CATALOG_STORE;
use crate::crdt::doc::{DocId, DocKind, WriterId};
use crate::store::Store;
use crate::sync::config::SyncConfig;
use crate::sync::local::SharedDocs;
use crate::sync::mqtt::claim::{Claim, OFFLINE};
use crate::sync::mqtt::topics::{Id, Scope, TopicSpace, kind_id, scope_of};
use crate::sync::mqtt::transport::{MqttTransport, QoS, StatusMessage, TransportConfig};
use crate::sync::wire::payload::MAX_MESSAGE_BYTES;

impl SyncService {
    /// Starts the transport and the tasks. `changed` is notified by the hook after commits
    /// that produced a change. `site`: the store's GLN and time zone for EPCIS events.
    // The node's identity, its store and the GLN are separate facts of the configuration;
    // bundling them into a struct for this one call would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        cfg: &SyncConfig,
        tenant: &str,
        store_id: &str,
        site: &crate::epcis::Site,
        writer: WriterId,
        store: Store,
        docs: SharedDocs,
        changed: Arc<Notify>,
    ) -> Result<Self, ServiceError> {
        let topics = TopicSpace::new(Id::new(tenant)?);
        let scope = Scope::store(Id::new(store_id)?)?;
        let me = Id::new(writer.as_str())?;
        let claim = Claim {
            incarnation: writer.incarnation().unwrap_or("0").to_owned(),
            started_ms: crate::clock::now_ms(),
        };
        // Its own client id per incarnation: a clone connects beside this box (and is told
        // to stop, see `sync::mqtt::claim`) instead of taking its session over again and again.
        let client_id = match writer.incarnation() {
            Some(inc) => format!("{writer}~{inc}"),
            None => writer.to_string(),
        };
        let mut transport = TransportConfig::new(client_id, &cfg.broker.host, cfg.broker.port);
        if let Some(files) = &cfg.broker.tls {
            transport.tls = Some(crate::tls::client_config(files)?);
        }
        transport.max_packet_size = u32::try_from(MAX_MESSAGE_BYTES * 2).unwrap_or(u32::MAX);
        transport.backoff.max = cfg.reconnect_max;
        transport.backoff.initial = transport.backoff.initial.min(cfg.reconnect_max);
        let status_topic = topics.status(&scope, &me).to_string();
        transport.last_will = Some(StatusMessage {
            topic: status_topic.clone(),
            payload: Bytes::from_static(OFFLINE),
            retain: true,
        });
        transport.online = Some(StatusMessage {
            topic: status_topic.clone(),
            payload: Bytes::from(claim.encode()),
            retain: true,
        });
        transport.subscriptions = subscriptions(&topics, &scope, &me);
        let store_segment = Id::new(store_id)?;
        transport.subscriptions.push((
            crate::sync::node::pii::subscription(&topics, &store_segment),
            QoS::AtLeastOnce,
        ));
        transport.subscriptions.push((
            crate::sync::node::epcis_link::subscription(&topics, &store_segment, &me),
            QoS::AtLeastOnce,
        ));
        transport.subscriptions.push((
            crate::sync::node::find::subscription(&topics, &scope, &me),
            QoS::AtLeastOnce,
        ));
        let shutdown = CancellationToken::new();
        let (mqtt, incoming, transport_task) = MqttTransport::start(transport, shutdown.clone())?;
        let (pii, pii_task) = crate::sync::node::pii::PiiLink::start(
            store.clone(),
            mqtt.clone(),
            topics.clone(),
            &store_segment,
            writer.as_str(),
            shutdown.clone(),
        )?;
        let node_id = writer
            .as_str()
            .strip_prefix(&format!("{store_id}."))
            .unwrap_or(writer.as_str());
        let (epcis, epcis_task) = crate::sync::node::epcis_link::EpcisLink::start(
            store.clone(),
            mqtt.clone(),
            &topics,
            &store_segment,
            &me,
            crate::epcis::Origin::new(tenant, store_id, node_id, site.gln.as_deref())?
                .with_time_zone(site.time_zone.clone()),
            shutdown.clone(),
        )?;
        let finder = Arc::new(crate::sync::node::find::MemberFinder::new(
            mqtt.clone(),
            &topics,
            &scope,
            &me,
        ));
        let shared = Arc::new(Shared::default());
        let stock_id = DocId::new(store_id, DocKind::Stock)?;
        let catalog_id = DocId::new(CATALOG_STORE, DocKind::Catalog)?;
        let orders_id = DocId::new(store_id, DocKind::Orders)?;
        let changes_topic = topics
            .changes(&scope, &kind_id(DocKind::Stock)?, &me)
            .to_string();
        let orders_changes_topic = topics
            .changes(&scope, &kind_id(DocKind::Orders)?, &me)
            .to_string();
        let mut heads_topics = BTreeMap::new();
        for doc in [&stock_id, &catalog_id, &orders_id] {
            let topic = topics.heads(&scope, &scope_of(doc)?, &kind_id(doc.kind)?, &me);
            heads_topics.insert(doc.clone(), topic.to_string());
        }
        let writer_for_lanes = writer.clone();
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            docs: docs.clone(),
            mqtt: mqtt.clone(),
            topics,
            scope,
            me,
            writer,
            stock_id,
            catalog_id,
            orders_id,
            changes_topic,
            orders_changes_topic,
            heads_topics,
            shared: shared.clone(),
            pii,
            epcis,
            finder,
            lanes: provisioned_writers(cfg, store_id, &writer_for_lanes)?,
            claim,
            status_topic,
            shutdown: shutdown.clone(),
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let receiver = tokio::spawn(receive(ctx.clone(), incoming, cmd_tx, shutdown.clone()));
        let publisher = tokio::spawn(publish_loop(
            ctx.clone(),
            cmd_rx,
            changed,
            cfg.resend_interval,
            shutdown.clone(),
        ));
        Ok(Self {
            shutdown,
            tasks: Mutex::new(vec![
                receiver,
                publisher,
                transport_task,
                pii_task,
                epcis_task,
            ]),
            shared,
            docs,
            store,
            mqtt,
            ctx,
        })
    }
}

/// What a lane subscribes to: its store's topics and HQ's that concern its store, never
/// another store's (the broker ACL enforces the same).
pub fn subscriptions(topics: &TopicSpace, scope: &Scope, me: &Id) -> Vec<(String, QoS)> {
    let q = QoS::AtLeastOnce;
    vec![
        // Other lanes of this store.
        (topics.changes_filter(Some(scope)), q),
        (topics.heads_filter(Some(scope), Some(scope)), q),
        // HQ's documents (catalog), HQ's changes of this store's documents (orders, epoch
        // announcements), HQ's acknowledgements of ours, HQ's catalog heads, HQ's status.
        (topics.changes_filter(Some(&Scope::Hq)), q),
        (
            topics.changes_about_filter(Some(&Scope::Hq), Some(scope)),
            q,
        ),
        (topics.heads_filter(Some(&Scope::Hq), Some(scope)), q),
        (topics.heads_filter(Some(&Scope::Hq), Some(&Scope::Hq)), q),
        (topics.status_filter(Some(&Scope::Hq)), q),
        (topics.response(scope, me).to_string(), q),
        // The statuses of the store's lanes, its own included: the echo of its `online`
        // marks the end of the retained messages.
        (topics.status_filter(Some(scope)), q),
        // Lanes retired for good (`storenode lane retire`): not offered anything any more.
        (topics.retired_filter(scope), q),
    ]
}

/// `sync.lanes` as writer ids, with this node's own.
fn provisioned_writers(
    cfg: &SyncConfig,
    store_id: &str,
    me: &WriterId,
) -> Result<Option<BTreeSet<WriterId>>, ServiceError> {
    let Some(nodes) = &cfg.lanes else {
        return Ok(None);
    };
    let mut writers = nodes
        .iter()
        .map(|node| WriterId::new(&format!("{store_id}.{node}")))
        .collect::<Result<BTreeSet<_>, _>>()?;
    writers.insert(me.clone());
    Ok(Some(writers))
}
