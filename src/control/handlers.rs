//! What the daemon does for each control request. Everything goes through the running
//! node's store handle (reader pool, writer thread), never a second writer on the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::protocol::{
    BackupReport, Command, ComponentView, DbCheckReport, Response, StatusReport, SyncReport,
    parse_metrics,
};
use crate::api::AppState;
use crate::health::{Component, State};
use crate::sync::node::SyncInspect;

/// Everything the control server reads from the node.
#[derive(Clone)]
pub struct ControlContext {
    pub state: AppState,
    pub sync: Option<Arc<dyn SyncInspect>>,
}

impl ControlContext {
    pub fn new(state: AppState) -> Self {
        Self { state, sync: None }
    }
}

pub async fn answer(context: &ControlContext, command: Command) -> Response {
    match command {
        Command::Status => respond(Ok::<_, String>(status(context).await)),
        Command::DbCheck => respond(db_check(context).await),
        Command::DbBackup { out } => respond(db_backup(context, out).await),
        Command::Sync => respond(Ok::<_, String>(sync(context).await)),
        Command::Lanes { action } => match &context.sync {
            Some(inspect) => respond(inspect.lanes(action).await),
            None => Response::failure("sync is not configured on this node ([sync] broker)"),
        },
        // Streaming; handled by the server before it gets here.
        Command::Tail { .. } => Response::failure("tail is a streaming command"),
    }
}

fn respond<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Response {
    match result.map(|value| serde_json::to_value(value)) {
        Ok(Ok(value)) => Response::success(value),
        Ok(Err(e)) => Response::failure(format!("cannot encode the answer: {e}")),
        Err(e) => Response::failure(e.to_string()),
    }
}

fn view(component: &Component) -> ComponentView {
    let state = match component.state {
        State::Ok => "ok",
        State::Degraded => "degraded",
        State::Down => "down",
    };
    ComponentView {
        state: state.to_string(),
        detail: component.detail.clone(),
        since: component.since.clone(),
        critical: component.critical,
    }
}

fn metrics_text(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    state.health.render(&mut out);
    (state.extra_metrics)(&mut out);
    out
}

async fn status(context: &ControlContext) -> StatusReport {
    let state = &context.state;
    crate::probes::check_store(&state.store, &state.health).await;
    let config = &state.config;
    let db_path = state.store.path().to_path_buf();
    let db_bytes = file_len(&db_path) + file_len(&sibling(&db_path, "-wal"));
    let metrics = parse_metrics(&metrics_text(state));
    let outbox = metrics
        .iter()
        .find(|(name, _)| name.starts_with("storenode_sync_outbox"))
        .map(|(_, value)| *value);
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: super::protocol::PROTOCOL_VERSION,
        tenant: config.node.tenant.clone(),
        store_id: config.node.store_id.clone(),
        node_id: config.node.node_id.clone(),
        listen: config.api.listen.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        db_path,
        db_bytes,
        ready: state.health.ready(),
        components: state
            .health
            .snapshot()
            .iter()
            .map(|(name, c)| (name.clone(), view(c)))
            .collect(),
        metrics,
        outbox,
        sync_configured: config.sync.is_some(),
    }
}

async fn db_check(context: &ControlContext) -> Result<DbCheckReport, String> {
    let path = context.state.store.path().to_path_buf();
    context
        .state
        .store
        .read(move |conn| {
            crate::store::file::full_check(conn, &path)
                .map_err(|e| crate::store::StoreError::Inconsistent(e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())
}

async fn db_backup(context: &ControlContext, out: Option<PathBuf>) -> Result<BackupReport, String> {
    let out = match out {
        Some(out) if out.is_absolute() => out,
        Some(out) => {
            return Err(format!(
                "backup path {} must be absolute (the node does not share your working directory)",
                out.display()
            ));
        }
        None => default_backup_path(&context.state.config.node.data_dir),
    };
    tracing::info!(out = %out.display(), "online backup requested");
    context
        .state
        .store
        .read(move |conn| {
            crate::store::file::backup_online(conn, &out)
                .map_err(|e| crate::store::StoreError::Unavailable(e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())
}

/// `{data_dir}/backups/store-20250101T120000Z.db`: sorts by date, one per second at most.
pub fn default_backup_path(data_dir: &std::path::Path) -> PathBuf {
    let stamp: String = crate::clock::now_utc()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    data_dir.join("backups").join(format!("store-{stamp}Z.db"))
}

async fn sync(context: &ControlContext) -> SyncReport {
    let state = &context.state;
    let is_sync = |name: &str| name.starts_with("sync") || name.starts_with("mqtt");
    let components: BTreeMap<String, ComponentView> = state
        .health
        .snapshot()
        .iter()
        .filter(|(name, _)| is_sync(name))
        .map(|(name, c)| (name.clone(), view(c)))
        .collect();
    let metrics = parse_metrics(&metrics_text(state))
        .into_iter()
        .filter(|(name, _)| name.starts_with("storenode_sync_"))
        .collect();
    SyncReport {
        configured: state.config.sync.is_some(),
        components,
        metrics,
        details: match &context.sync {
            Some(inspect) => Some(inspect.report().await),
            None => None,
        },
    }
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn sibling(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_backup_names_sort_by_time() {
        let path = default_backup_path(std::path::Path::new("/var/lib/storenode"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("store-20"), "{name}");
        assert!(name.ends_with("Z.db"), "{name}");
        assert_eq!(name.len(), "store-20250101T120000Z.db".len(), "{name}");
    }
}
