use std::os::unix::fs::PermissionsExt;

use super::*;

fn args(dir: &Path) -> ProvisionArgs {
    ProvisionArgs {
        store_id: Some("s042".into()),
        tenant: Some("acme".into()),
        node_id: Some("lane1".into()),
        token_for: vec!["pos1".into(), "pos2".into()],
        out: dir.join("etc/storenode.toml"),
        listen: Some("127.0.0.1:8080".into()),
        data_dir: Some(dir.join("state")),
        owner: "no-such-user-storenode-test".into(),
        udev_dir: dir.join("udev"),
        mosquitto_dir: dir.join("mosquitto"),
        ..ProvisionArgs::default()
    }
}

fn entries(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for entry in walk(dir) {
        let data = fs::read(&entry).unwrap_or_default();
        all.push((entry.display().to_string(), data));
    }
    all.sort();
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.push(path.clone());
        if path.is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

#[test]
fn writes_a_config_that_loads_with_private_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let args = args(dir.path());
    let done = run(&args).unwrap();
    let config = Config::load(&done.config).unwrap();
    assert_eq!(config.node.store_id, "s042");
    assert_eq!(config.api.terminals.len(), 2);
    for (id, token, path) in &done.tokens {
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{id}");
        assert_eq!(token.len(), 2 * TOKEN_BYTES);
    }
    assert_ne!(done.tokens[0].1, done.tokens[1].1);
    assert!(
        !fs::read_to_string(&done.config)
            .unwrap()
            .contains(&done.tokens[0].1)
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    run(&args).unwrap();
    assert!(matches!(run(&args), Err(ProvisionError::Exists { .. })));
    args.force = true;
    run(&args).unwrap();
}

#[test]
fn force_to_add_a_till_keeps_every_token_and_the_hand_written_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    run(&args).unwrap();
    let tokens = dir.path().join("etc/tokens");
    let before = (
        fs::read(tokens.join("pos1")).unwrap(),
        fs::read(tokens.join("pos2")).unwrap(),
    );
    let mut text = fs::read_to_string(&args.out).unwrap();
    text.push_str("\n# door scanner, added by hand\n[[devices.scanners]]\nid = \"scanner0\"\nport = \"/dev/ttyACM0\"\n");
    fs::write(&args.out, text).unwrap();

    args.force = true;
    args.token_for.push("pos3".into());
    let done = run(&args).unwrap();
    assert_eq!(done.tokens.len(), 1, "only the new till gets a token");
    assert_eq!(done.kept, ["pos1", "pos2"]);
    assert_eq!(fs::read(tokens.join("pos1")).unwrap(), before.0);
    assert_eq!(fs::read(tokens.join("pos2")).unwrap(), before.1);
    let text = fs::read_to_string(&args.out).unwrap();
    assert!(text.contains("# door scanner, added by hand"), "{text}");
    let config = Config::load(&args.out).unwrap();
    assert_eq!(config.api.terminals.len(), 3);
    assert_eq!(config.devices.scanners.len(), 1);

    args.rotate_tokens = true;
    let rotated = run(&args).unwrap();
    assert_eq!(rotated.tokens.len(), 3);
    assert_ne!(fs::read(tokens.join("pos1")).unwrap(), before.0);
}

#[test]
fn a_failed_force_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    run(&args).unwrap();
    let before = entries(dir.path());
    args.force = true;
    args.rotate_tokens = true;
    args.token_for.push("pos3".into());
    args.store_id = Some("bad id!".into());
    assert!(matches!(run(&args), Err(ProvisionError::Invalid(_))));
    assert_eq!(entries(dir.path()), before);
}

#[test]
fn an_invalid_store_id_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    args.store_id = Some("bad id!".into());
    assert!(matches!(run(&args), Err(ProvisionError::Invalid(_))));
    assert!(!args.out.exists());
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn partial_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    args.broker = Some("mqtts://hq.example.com:8883".into());
    args.ca = Some(dir.path().join("ca.pem"));
    assert!(matches!(run(&args), Err(ProvisionError::IncompleteTls)));
}

/// `(ca, cert, key)` files for CN `name`; the cert signed by a CA other than the one
/// returned when `foreign`.
fn identity(dir: &Path, name: &str, foreign: bool) -> (PathBuf, PathBuf, PathBuf) {
    let issue = |label: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, label);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, rcgen::Issuer::new(params, key))
    };
    let (ca_pem, issuer) = issue("CA");
    let (_, other) = issue("other CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params
        .signed_by(&key, if foreign { &other } else { &issuer })
        .unwrap();
    let paths = (dir.join("ca.pem"), dir.join("c.pem"), dir.join("c.key"));
    fs::write(&paths.0, ca_pem).unwrap();
    fs::write(&paths.1, cert.pem()).unwrap();
    fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn with_tls(dir: &Path, files: (PathBuf, PathBuf, PathBuf)) -> ProvisionArgs {
    let mut args = args(&dir.join("box"));
    args.broker = Some("mqtts://hq.example.com:8883".into());
    args.ca = Some(files.0);
    args.cert = Some(files.1);
    args.key = Some(files.2);
    args
}

#[test]
fn certificates_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let good = with_tls(dir.path(), identity(dir.path(), "s042", false));
    run(&good).unwrap();
    assert!(dir.path().join("box/etc/certs/node.key").exists());

    for (name, foreign, want) in [
        ("s043", false, "is for \"s043\""),
        ("s042", true, "does not verify against the CA"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let args = with_tls(dir.path(), identity(dir.path(), name, foreign));
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        assert!(!dir.path().join("box").exists(), "nothing written");
    }
    let dir = tempfile::tempdir().unwrap();
    let files = identity(dir.path(), "s042", false);
    fs::write(&files.1, "garbage").unwrap();
    let err = run(&with_tls(dir.path(), files)).unwrap_err().to_string();
    assert!(err.contains("certificate file"), "{err}");
}

#[test]
fn a_provisioning_file_gives_config_devices_and_udev_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("storenode-provision.toml");
    fs::write(
        &file,
        r#"
store_id = "s042"
tenant = "acme"
terminals = ["pos1"]
[[devices.scanners]]
id = "scanner0"
port = "/dev/ttyACM0"
usb_serial = "19012B0123"
"#,
    )
    .unwrap();
    let args = ProvisionArgs {
        from: Some(file.clone()),
        consume: true,
        store_id: None,
        tenant: None,
        token_for: Vec::new(),
        ..args(dir.path())
    };
    let done = run(&args).unwrap();
    let config = Config::load(&done.config).unwrap();
    assert_eq!(config.node.store_id, "s042");
    assert_eq!(config.api.terminals.len(), 1);
    let rules = fs::read_to_string(done.udev_rules.unwrap()).unwrap();
    assert!(rules.contains("ATTRS{serial}==\"19012B0123\""), "{rules}");
    let text = fs::read_to_string(&done.config).unwrap();
    assert!(text.contains("/dev/storenode/scanner0"), "{text}");
    assert!(!file.exists(), "consumed");
}

fn with_local_broker(dir: &Path) -> ProvisionArgs {
    let mut args = with_tls(dir, identity(dir, "s042", false));
    args.local_broker = true;
    args
}

#[test]
fn a_local_broker_gets_listener_bridge_and_keys_and_the_node_points_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let args = with_local_broker(dir.path());
    let done = run(&args).unwrap();
    let mosquitto = dir.path().join("box/mosquitto");
    let bridge = fs::read_to_string(mosquitto.join("conf.d/storenode-30-bridge.conf")).unwrap();
    assert!(bridge.contains("address hq.example.com:8883\n"), "{bridge}");
    let key = mosquitto.join("storenode/store.key");
    assert!(bridge.contains(&format!("bridge_keyfile {}\n", key.display())));
    assert_eq!(
        fs::read(&key).unwrap(),
        fs::read(args.key.as_ref().unwrap()).unwrap()
    );
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let local = fs::read_to_string(mosquitto.join("conf.d/storenode-10-local.conf")).unwrap();
    assert!(local.contains("listener 1883 127.0.0.1\n"), "{local}");
    assert!(mosquitto.join("storenode/acl-local").exists());
    assert!(!mosquitto.join("conf.d/storenode-20-lanes.conf").exists());
    assert_eq!(done.broker_files.len(), 6);

    let config = Config::load(&done.config).unwrap();
    let sync = config.sync.expect("sync on");
    assert_eq!(
        (sync.broker.host.as_str(), sync.broker.port),
        ("127.0.0.1", 1883)
    );
    assert!(sync.broker.tls.is_none());
    let text = fs::read_to_string(&done.config).unwrap();
    assert!(!text.contains("ca_file"), "{text}");
    assert!(render(&done).contains("systemctl restart mosquitto storenode"));
}

#[test]
fn re_provisioning_a_local_broker_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = with_local_broker(dir.path());
    run(&args).unwrap();
    let before = entries(&dir.path().join("box"));
    args.force = true;
    run(&args).unwrap();
    assert_eq!(entries(&dir.path().join("box")), before);
}

#[test]
fn a_refused_local_broker_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = with_local_broker(dir.path());
    run(&args).unwrap();
    let before = entries(&dir.path().join("box"));
    args.force = true;
    // A listener certificate without a usable key: refused before any write.
    let garbage = dir.path().join("garbage.pem");
    fs::write(&garbage, "garbage").unwrap();
    args.lanes_cert = Some(garbage.clone());
    args.lanes_key = Some(garbage);
    assert!(run(&args).is_err());
    args.lanes_cert = None;
    args.lanes_key = None;
    args.local_broker_port = Some(1884);
    args.broker = Some("mqtts://hq\nlistener 9:8883".into());
    assert!(matches!(run(&args), Err(ProvisionError::Broker(_))));
    assert_eq!(entries(&dir.path().join("box")), before);
}

#[test]
fn a_local_broker_needs_hqs_mqtts_broker_and_without_it_nothing_is_written_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    args.local_broker = true;
    assert!(matches!(run(&args), Err(ProvisionError::Broker(_))));
    assert!(entries(dir.path()).is_empty());
    args.local_broker = false;
    run(&args).unwrap();
    assert!(!dir.path().join("mosquitto").exists());
}

#[test]
fn a_provisioning_file_asks_for_the_local_broker_with_a_lanes_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = identity(dir.path(), "s042", false);
    let file = dir.path().join("storenode-provision.toml");
    fs::write(
        &file,
        format!(
            "store_id = \"s042\"\ntenant = \"acme\"\nbroker = \"mqtts://10.0.2.2:18883\"\n\
             ca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\nlocal_broker = true\n\
             local_broker_port = 1884\nlanes_cert = \"c.pem\"\nlanes_key = \"c.key\"\n"
        ),
    )
    .unwrap();
    let args = ProvisionArgs {
        from: Some(file),
        store_id: None,
        tenant: None,
        token_for: Vec::new(),
        ..args(&dir.path().join("box"))
    };
    let done = run(&args).unwrap();
    let mosquitto = dir.path().join("box/mosquitto");
    let lanes = fs::read_to_string(mosquitto.join("conf.d/storenode-20-lanes.conf")).unwrap();
    assert!(lanes.contains("require_certificate true"), "{lanes}");
    let acl = fs::read_to_string(mosquitto.join("storenode/acl")).unwrap();
    assert!(
        acl.contains("pattern readwrite storenode/v1/acme/%u/changes/#"),
        "{acl}"
    );
    let config = Config::load(&done.config).unwrap();
    assert_eq!(config.sync.unwrap().broker.port, 1884);
}
