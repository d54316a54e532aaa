//! The daemon's side of the control socket: binds it with mode 0660, answers one request per
//! connection (or streams `tail`), and removes the socket file at shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handlers::{self, ControlContext};
use super::protocol::{self, Command, MAX_REQUEST_BYTES, Response, TailItem};

/// Owner and group may connect; nobody else (`diag` runs as root or in the service group).
const SOCKET_MODE: u32 = 0o660;
/// A client that connects and says nothing is dropped after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Parallel control connections; more wait (a runaway script must not starve the node).
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another storenode is already running: its control socket {} answers", path.display())]
    AlreadyRunning { path: PathBuf },
    #[error("cannot create control socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A bound control socket; the file is removed when the server stops.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds `path`, replacing a stale socket left by a crashed node but never a live one.
pub fn bind(path: &Path) -> Result<ControlSocket, ServerError> {
    let bind_err = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::AlreadyRunning {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    // The socket is created with the process umask (0755 under systemd's default 0022: no
    // one else may connect, since connecting needs write permission); this only widens it to
    // the group. The unit's UMask=0027 keeps it that way.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(bind_err)?;
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
    })
}

/// Serves until `shutdown`; each connection is a task on `tasks`, stopped by `shutdown` too.
pub async fn serve(
    socket: ControlSocket,
    context: ControlContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let context = Arc::new(context);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = socket.listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let context = context.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = handle_connection(stream, &context, &stop).await {
                tracing::debug!(error = %e, "control connection ended with an error");
            }
            drop(slot);
        });
    }
    if let Err(e) = std::fs::remove_file(&socket.path) {
        tracing::debug!(error = %e, path = %socket.path.display(), "control socket already gone");
    }
}

async fn handle_connection(
    stream: UnixStream,
    context: &ControlContext,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_REQUEST_BYTES));
    let line = match tokio::time::timeout(REQUEST_TIMEOUT, lines.next()).await {
        Ok(Some(Ok(line))) => line,
        Ok(Some(Err(e))) => {
            let answer = Response::failure(format!("unreadable request: {e}"));
            return write.write_all(&protocol::encode_line(&answer)).await;
        }
        // Hung up, or said nothing in time.
        Ok(None) | Err(_) => return Ok(()),
    };
    let request = match protocol::decode_request(&line) {
        Ok(request) => request,
        Err(e) => {
            let answer = Response::failure(e.to_string());
            return write.write_all(&protocol::encode_line(&answer)).await;
        }
    };
    tracing::debug!(command = ?request.command, "control request");
    if let Command::Tail { device } = request.command {
        return stream_events(context, device, lines, write, shutdown).await;
    }
    let answer = handlers::answer(context, request.command).await;
    write.write_all(&protocol::encode_line(&answer)).await
}

/// Writes live events until the client hangs up or the node stops.
async fn stream_events(
    context: &ControlContext,
    device: Option<String>,
    mut lines: FramedRead<tokio::net::unix::OwnedReadHalf, LinesCodec>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    shutdown: &CancellationToken,
) -> std::io::Result<()> {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = context.state.events.subscribe();
    let ack = Response::success(serde_json::json!({ "streaming": true }));
    write.write_all(&protocol::encode_line(&ack)).await?;
    loop {
        let item = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            // Anything from the client, or end of stream, ends the tail.
            _ = lines.next() => return Ok(()),
            received = events.recv() => match received {
                Ok(event) => {
                    if device.as_deref().is_some_and(|d| d != &*event.device) {
                        continue;
                    }
                    TailItem::Event {
                        kind: event.kind.to_string(),
                        device: event.device.to_string(),
                        data: serde_json::from_str(&event.json)
                            .unwrap_or(serde_json::Value::String(event.json)),
                    }
                }
                Err(RecvError::Lagged(missed)) => TailItem::Lagged { missed },
                Err(RecvError::Closed) => return Ok(()),
            },
        };
        write.write_all(&protocol::encode_line(&item)).await?;
    }
}
