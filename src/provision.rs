//! `storenode provision`: sets up a store box with one command.
//!
//! Writes the configuration for a store (ids, API listen address, terminal tokens, the HQ
//! broker and its certificates), copies the certificates into `{config dir}/certs` (the
//! private key 0600), generates terminal tokens into `{config dir}/tokens/<id>` (0600) and
//! prints them once. The new file is loaded back with [`Config::load`] before it replaces
//! the target (atomic rename), so a box is never left with a configuration that does not
//! start.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

/// Random bytes per terminal token (hex-encoded: 64 characters).
const TOKEN_BYTES: usize = 32;

#[derive(clap::Args, Debug, Clone)]
pub struct ProvisionArgs {
    /// This store's id, unique in the chain.
    #[arg(long)]
    pub store_id: String,
    /// The chain (tenant) the store belongs to.
    #[arg(long)]
    pub tenant: String,
    /// This box's id within the store.
    #[arg(long, default_value = "node1")]
    pub node_id: String,
    /// HQ broker, e.g. mqtts://hq.example.com:8883 (omit for a standalone store).
    #[arg(long)]
    pub broker: Option<String>,
    /// CA certificate (PEM) of the broker.
    #[arg(long, requires = "broker")]
    pub ca: Option<PathBuf>,
    /// This store's client certificate (PEM).
    #[arg(long, requires = "broker")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "broker")]
    pub key: Option<PathBuf>,
    /// Generate a token for this terminal id (repeat for each till or handheld).
    #[arg(long = "token-for", value_name = "TERMINAL")]
    pub token_for: Vec<String>,
    /// Where the configuration goes; certs/ and tokens/ are created beside it.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub out: PathBuf,
    /// Replace an existing configuration (and regenerate the listed tokens).
    #[arg(long)]
    pub force: bool,
    /// Address of the POS API.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: String,
    #[arg(long, default_value = "/var/lib/storenode")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// The service user that must read the secrets (chown when it exists and we are root).
    #[arg(long, default_value = "storenode")]
    pub owner: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the generated configuration does not load, nothing was replaced: {0}")]
    Invalid(#[from] ConfigError),
    #[error("--ca, --cert and --key are all needed for an mqtts:// broker (mutual TLS)")]
    IncompleteTls,
}

/// What provisioning wrote; the tokens are shown to the operator once.
#[derive(Debug)]
pub struct Provisioned {
    pub config: PathBuf,
    pub tokens: Vec<(String, String, PathBuf)>,
    pub certs: Vec<PathBuf>,
    pub notes: Vec<String>,
}

struct Layout {
    dir: PathBuf,
    certs: PathBuf,
    tokens: PathBuf,
}

pub fn run(args: &ProvisionArgs) -> Result<Provisioned, ProvisionError> {
    if args.out.exists() && !args.force {
        return Err(ProvisionError::Exists {
            path: args.out.clone(),
        });
    }
    let tls = [&args.ca, &args.cert, &args.key];
    let some = tls.iter().filter(|f| f.is_some()).count();
    if some != 0 && some != 3 {
        return Err(ProvisionError::IncompleteTls);
    }
    let dir = args
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let layout = Layout {
        certs: dir.join("certs"),
        tokens: dir.join("tokens"),
        dir,
    };
    create_dir(&layout.dir)?;
    let owner = lookup_user(&args.owner);
    let mut notes = Vec::new();
    if owner.is_none() {
        notes.push(format!(
            "user {} does not exist: secrets stay owned by the current user (the package's postinst creates it)",
            args.owner
        ));
    }

    let certs = copy_certificates(args, &layout, owner)?;
    let tokens = write_tokens(&args.token_for, &layout, owner)?;
    let text = render_config(args, &certs, &tokens);
    let staged = layout
        .dir
        .join(format!(".storenode.toml.provision-{}", std::process::id()));
    write_file(&staged, text.as_bytes(), 0o644)?;
    if let Err(e) = Config::load(&staged) {
        let _ = fs::remove_file(&staged);
        return Err(e.into());
    }
    fs::rename(&staged, &args.out).map_err(|source| ProvisionError::Io {
        path: args.out.clone(),
        source,
    })?;
    Ok(Provisioned {
        config: args.out.clone(),
        tokens,
        certs: certs.map(|c| c.to_vec()).unwrap_or_default(),
        notes,
    })
}

fn create_dir(dir: &Path) -> Result<(), ProvisionError> {
    fs::create_dir_all(dir).map_err(|source| ProvisionError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Creates (or truncates) `path` with `mode` from the start, so a secret is never readable
/// by others, even for a moment.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), ProvisionError> {
    let io = |source| ProvisionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    // An existing file keeps its old mode through `open`; set it explicitly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io)?;
    file.write_all(data).map_err(io)?;
    file.sync_all().map_err(io)
}

fn chown(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        // Not root: the files stay ours, which is what a non-root test or dry run wants.
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}

/// `[ca, cert, key]` copied into `certs/`.
fn copy_certificates(
    args: &ProvisionArgs,
    layout: &Layout,
    owner: Option<(u32, u32)>,
) -> Result<Option<[PathBuf; 3]>, ProvisionError> {
    let (Some(ca), Some(cert), Some(key)) = (&args.ca, &args.cert, &args.key) else {
        return Ok(None);
    };
    create_dir(&layout.certs)?;
    let mut copied = Vec::new();
    for (source, name, mode) in [
        (ca, "ca.pem", 0o644),
        (cert, "node.pem", 0o644),
        (key, "node.key", 0o600),
    ] {
        let data = fs::read(source).map_err(|e| ProvisionError::Io {
            path: source.clone(),
            source: e,
        })?;
        let target = layout.certs.join(name);
        write_file(&target, &data, mode)?;
        chown(&target, owner);
        copied.push(target);
    }
    Ok(copied.try_into().ok())
}

fn write_tokens(
    ids: &[String],
    layout: &Layout,
    owner: Option<(u32, u32)>,
) -> Result<Vec<(String, String, PathBuf)>, ProvisionError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    create_dir(&layout.tokens)?;
    let mut written = Vec::new();
    for id in ids {
        // A token file name comes from the operator; the config check refuses odd ids, but
        // the file is written first, so refuse path tricks here.
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(ProvisionError::Invalid(ConfigError::Invalid {
                file: layout.tokens.clone(),
                key: "--token-for".into(),
                reason: format!("{id:?} is not a terminal id"),
            }));
        }
        let token = random_token();
        let path = layout.tokens.join(id);
        write_file(&path, format!("{token}\n").as_bytes(), 0o600)?;
        chown(&path, owner);
        written.push((id.clone(), token, path));
    }
    Ok(written)
}

fn random_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    hex::encode(bytes)
}

/// A TOML string literal (quoted and escaped).
fn quote(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

fn render_config(
    args: &ProvisionArgs,
    certs: &Option<[PathBuf; 3]>,
    tokens: &[(String, String, PathBuf)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `storenode provision`; every key is explained in\n# /usr/share/doc/storenode/storenode.example.toml. Check with: storenode config check\n"
    );
    let _ = writeln!(out, "[node]");
    let _ = writeln!(out, "tenant = {}", quote(&args.tenant));
    let _ = writeln!(out, "store_id = {}", quote(&args.store_id));
    let _ = writeln!(out, "node_id = {}", quote(&args.node_id));
    let _ = writeln!(
        out,
        "data_dir = {}",
        quote(&args.data_dir.to_string_lossy())
    );
    let _ = writeln!(out, "currency = {}\n", quote(&args.currency));
    let _ = writeln!(out, "[api]\nlisten = {}\n", quote(&args.listen));
    for (id, _, path) in tokens {
        let _ = writeln!(
            out,
            "[[api.terminals]]\nid = {}\ntoken_file = {}\n",
            quote(id),
            quote(&path.to_string_lossy())
        );
    }
    if let Some(broker) = &args.broker {
        let _ = writeln!(out, "[sync]\nbroker = {}", quote(broker));
        if let Some([ca, cert, key]) = certs {
            let _ = writeln!(out, "ca_file = {}", quote(&ca.to_string_lossy()));
            let _ = writeln!(out, "cert_file = {}", quote(&cert.to_string_lossy()));
            let _ = writeln!(out, "key_file = {}", quote(&key.to_string_lossy()));
        }
    }
    out
}

/// `(uid, gid)` of `name` from /etc/passwd.
fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    parse_passwd(&passwd, name)
}

fn parse_passwd(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let uid = fields.nth(1)?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// The operator's summary; the only place the tokens are ever shown.
pub fn render(done: &Provisioned) -> String {
    let mut out = format!("wrote {}\n", done.config.display());
    for cert in &done.certs {
        let _ = writeln!(out, "  certificate {}", cert.display());
    }
    if !done.tokens.is_empty() {
        let _ = writeln!(
            out,
            "terminal tokens (shown once; also in the files, readable by the service only):"
        );
        for (id, token, path) in &done.tokens {
            let _ = writeln!(out, "  {id:<10} {token}   ({})", path.display());
        }
    }
    for note in &done.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(
        out,
        "next: systemctl restart storenode && storenode diag status"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> ProvisionArgs {
        ProvisionArgs {
            store_id: "s042".into(),
            tenant: "acme".into(),
            node_id: "lane1".into(),
            broker: None,
            ca: None,
            cert: None,
            key: None,
            token_for: vec!["pos1".into(), "pos2".into()],
            out: dir.join("etc/storenode.toml"),
            force: false,
            listen: "127.0.0.1:8080".into(),
            data_dir: dir.join("state"),
            currency: "EUR".into(),
            owner: "no-such-user-storenode-test".into(),
        }
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
    fn an_invalid_store_id_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path());
        args.store_id = "bad id!".into();
        assert!(matches!(run(&args), Err(ProvisionError::Invalid(_))));
        assert!(!args.out.exists());
        let leftovers: Vec<_> = fs::read_dir(args.out.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".storenode"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn partial_tls_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = args(dir.path());
        args.broker = Some("mqtts://hq.example.com:8883".into());
        args.ca = Some(dir.path().join("ca.pem"));
        assert!(matches!(run(&args), Err(ProvisionError::IncompleteTls)));
    }

    #[test]
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nstorenode:x:998:20::/var/lib/storenode:/usr/sbin/nologin\n";
        assert_eq!(parse_passwd(passwd, "storenode"), Some((998, 20)));
        assert_eq!(parse_passwd(passwd, "nobody"), None);
    }

    #[test]
    fn strings_are_quoted_safely() {
        for value in ["a\"b", "it's", "back\\slash", "new\nline"] {
            let table: toml::Table = format!("x = {}", quote(value)).parse().unwrap();
            assert_eq!(table["x"].as_str(), Some(value));
        }
    }
}
