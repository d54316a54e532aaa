//! The `storenode diag` side of the control socket: blocking, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::protocol::{self, Command, ProtocolError, Request, Response, TailItem};

/// Longest answer line accepted (a status report is a few KB).
const MAX_ANSWER_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("storenode is not running (no control socket at {})", path.display())]
    NotRunning { path: PathBuf },
    #[error(
        "storenode is not running (control socket {} does not answer; it is left from a previous run)",
        path.display()
    )]
    Stale { path: PathBuf },
    #[error(
        "permission denied on {}: run as root or as a member of the storenode group",
        path.display()
    )]
    PermissionDenied { path: PathBuf },
    #[error("control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the node closed the connection without answering")]
    Closed,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the node refused: {0}")]
    Refused(String),
}

pub struct Client {
    path: PathBuf,
    stream: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        use std::io::ErrorKind;
        let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
            ErrorKind::NotFound => ClientError::NotRunning {
                path: path.to_path_buf(),
            },
            ErrorKind::ConnectionRefused => ClientError::Stale {
                path: path.to_path_buf(),
            },
            ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => ClientError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            stream,
        })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        match source.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ClientError::Timeout(Duration::ZERO)
            }
            _ => ClientError::Io {
                path: self.path.clone(),
                source,
            },
        }
    }

    fn send(&mut self, command: Command) -> Result<(), ClientError> {
        let line = protocol::encode_line(&Request::new(command));
        self.stream.write_all(&line).map_err(|e| self.io(e))
    }

    /// Sends `command` and decodes its answer, waiting at most `timeout`.
    pub fn call<T: DeserializeOwned>(
        mut self,
        command: Command,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| self.io(e))?;
        self.send(command)?;
        let mut reader = BufReader::new(&self.stream).take(MAX_ANSWER_BYTES);
        let mut line = String::new();
        let read = reader.read_line(&mut line);
        match read {
            Ok(0) => Err(ClientError::Closed),
            Ok(_) => decode_answer(&line),
            Err(e) if is_timeout(&e) => Err(ClientError::Timeout(timeout)),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Starts a live tail; the iterator ends when the node stops.
    pub fn tail(mut self, device: Option<String>) -> Result<Tail, ClientError> {
        self.send(Command::Tail { device })?;
        let mut reader = BufReader::new(self.stream);
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(_) => {}
            Err(source) => {
                return Err(ClientError::Io {
                    path: self.path,
                    source,
                });
            }
        }
        let _: serde_json::Value = decode_answer(&line)?;
        Ok(Tail { reader })
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn decode_answer<T: DeserializeOwned>(line: &str) -> Result<T, ClientError> {
    let response: Response = protocol::decode_line(line.trim_end())?;
    if !response.ok {
        return Err(ClientError::Refused(
            response.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    let result = response.result.unwrap_or(serde_json::Value::Null);
    serde_json::from_value(result)
        .map_err(|e| ClientError::Protocol(ProtocolError::Malformed(e.to_string())))
}

/// Live events from [`Client::tail`].
pub struct Tail {
    reader: BufReader<UnixStream>,
}

impl Tail {
    /// Bounds each wait for the next event (for `diag tail --seconds`); `None` waits forever.
    pub fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.reader.get_ref().set_read_timeout(timeout)
    }
}

impl Iterator for Tail {
    type Item = Result<TailItem, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(protocol::decode_line(line.trim_end()).map_err(ClientError::from)),
            Err(e) if is_timeout(&e) => Some(Err(ClientError::Timeout(Duration::ZERO))),
            Err(e) => Some(Err(ClientError::Io {
                path: PathBuf::new(),
                source: e,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_socket_says_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let err = Client::connect(&path).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "storenode is not running (no control socket at {})",
                path.display()
            )
        );
    }

    #[test]
    fn refusals_carry_the_reason() {
        let err = decode_answer::<serde_json::Value>(r#"{"v":1,"ok":false,"error":"disk full"}"#)
            .unwrap_err();
        assert_eq!(err.to_string(), "the node refused: disk full");
    }
}
