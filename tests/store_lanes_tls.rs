//! The store broker's listener for the lanes on the store's other boxes, as `storenode
//! provision --local-broker --lanes-cert --lanes-key` writes it (`conf.d/storenode-20-lanes.conf`
//! from the shipped `config/mosquitto/store-lanes.conf`, only its port moved off 8883): a
//! real Mosquitto runs it; a lane on "another box" connects over mutual TLS with the store's
//! certificate and converges with the lane on the box's loopback listener; a client without
//! a certificate, or with one from another CA, gets no MQTT session (TLS refuses it). Real
//! broker, real binaries, loopback only; every wait is bounded, nothing asserts on timing.

mod common;
mod sync_util;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::pki::{ClientCert, Pki};
use common::provision::{LanesListener, StoreBox, provision_local_broker};
use sync_util::{BrokerAccess, StoreNode, TENANT, wait_for};

const CONVERGE: Duration = Duration::from_secs(90);

/// The store box's Mosquitto configuration with the lanes' TLS listener, as provisioning
/// writes it, its listener moved to a free loopback port: the box and the lanes' port.
/// HQ's broker (the bridge's far end) is a port nobody listens on: the lanes of a store
/// converge through its own broker alone.
fn provision_with_lanes_listener(pki: &Pki) -> (StoreBox, u16) {
    let lanes = LanesListener {
        cert: pki.server_cert(),
        key: pki.server_key(),
    };
    let hq_port = common::node::free_port();
    let store_box = provision_local_broker("s1", TENANT, hq_port, &pki.client("s1"), Some(lanes));
    let lanes = store_box.conf_d.join("storenode-20-lanes.conf");
    let text = std::fs::read_to_string(&lanes).expect("the lanes' listener provision wrote");
    assert!(text.contains("\nlistener 8883\n"), "{text}");
    assert!(text.contains("\nrequire_certificate true\n"), "{text}");
    // 8883 may be taken on a test machine; everything else stays as written.
    let lanes_port = common::node::free_port();
    std::fs::write(
        &lanes,
        text.replace(
            "\nlistener 8883\n",
            &format!("\nlistener {lanes_port} 127.0.0.1\n"),
        ),
    )
    .expect("move the lanes' listener to a free port");
    (store_box, lanes_port)
}

fn pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let file = std::fs::File::open(path).expect("open certificate");
    rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .expect("parse certificate")
}

/// An MQTT 3.1.1 CONNECT over TLS to the lanes' listener, trusting `ca`, presenting
/// `client` if given: `Ok` once the broker answers CONNACK "accepted". Under TLS 1.3 the
/// client finishes its handshake before the server has checked the client's certificate:
/// a refusal arrives as an alert on the first read, so the CONNACK is what tells.
fn mqtt_connect(port: u16, ca: &Path, client: Option<&ClientCert>) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certs(ca) {
        roots.add(cert).expect("add CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(client) => {
            let key_file = std::fs::File::open(&client.key).expect("open key");
            let key = rustls_pemfile::private_key(&mut BufReader::new(key_file))
                .expect("parse key")
                .expect("a key in the file");
            builder
                .with_client_auth_cert(pem_certs(&client.cert), key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let mut socket = TcpStream::connect(("127.0.0.1", port)).map_err(|err| err.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut stream = rustls::Stream::new(&mut tls, &mut socket);
    let client_id = b"tls-probe";
    // CONNECT: protocol "MQTT" level 4, clean session, keep-alive 60 s, the client id.
    let mut connect = vec![0x10, (12 + client_id.len()) as u8];
    connect.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0]);
    connect.push(client_id.len() as u8);
    connect.extend_from_slice(client_id);
    stream.write_all(&connect).map_err(|err| err.to_string())?;
    let mut connack = [0u8; 4];
    stream
        .read_exact(&mut connack)
        .map_err(|err| err.to_string())?;
    match connack {
        [0x20, 2, _, 0] => Ok(()),
        other => Err(format!("CONNACK {other:?}")),
    }
}

#[test]
fn a_lane_of_another_box_syncs_over_the_lanes_tls_listener_and_no_certificate_is_refused() {
    let pki = Pki::new("lanes");
    let (store_box, lanes_port) = provision_with_lanes_listener(&pki);
    let mut options = MosquittoOptions::plain();
    options.conf_d = Some((store_box.conf_d.clone(), store_box.local_port));
    let store_broker = Mosquitto::start(options);
    wait_for(
        "the lanes' TLS listener accepts connections",
        Duration::from_secs(10),
        || TcpStream::connect(("127.0.0.1", lanes_port)).ok(),
    );

    // Refused: no certificate, and the store's name from another CA.
    let no_cert = mqtt_connect(lanes_port, pki.ca_cert(), None);
    assert!(no_cert.is_err(), "a client without a certificate got in");
    let other_ca = Pki::new("other");
    let foreign = ClientCert {
        ca_cert: pki.ca_cert().to_owned(),
        ..other_ca.client("s1")
    };
    let foreign_result = mqtt_connect(lanes_port, pki.ca_cert(), Some(&foreign));
    assert!(
        foreign_result.is_err(),
        "a certificate from another CA got in"
    );
    let lane_cert = pki.client("s1");
    assert_eq!(
        mqtt_connect(lanes_port, pki.ca_cert(), Some(&lane_cert)),
        Ok(()),
        "the store's certificate is refused:\n{}",
        store_broker.log()
    );

    // The lane on this box (loopback listener) and one on another box (TLS listener).
    let here = StoreNode::start(
        "s1",
        "lane1",
        &BrokerAccess::Plain {
            port: store_box.local_port,
        },
    );
    let other_box = StoreNode::start(
        "s1",
        "lane2",
        &BrokerAccess::Mtls {
            port: lanes_port,
            ca: lane_cert.ca_cert.clone(),
            cert: lane_cert.cert.clone(),
            key: lane_cert.key.clone(),
        },
    );
    here.receive("r1", "MILK", 100);
    wait_for(
        "the other box's lane sees the receipt over TLS",
        CONVERGE,
        || (other_box.on_hand("MILK") == 100).then_some(()),
    );
    other_box.sell("tls-1", "MILK", 7);
    wait_for(
        "the box's own lane sees the other box's sale",
        CONVERGE,
        || (here.on_hand("MILK") == 93).then_some(()),
    );
    let log = store_broker.log();
    assert!(
        log.contains("u's1'"),
        "the lane connected with the store's certificate as its identity:\n{log}"
    );
}
