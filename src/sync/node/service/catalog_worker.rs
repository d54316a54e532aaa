//! The thread HQ's catalog work runs on: applying a change to the automerge document,
//! diffing it and deriving the item rows (`sync::local::catalog`), and at start reading the
//! stored catalog to compare it with SQLite. Off the writer, so sales never wait for it;
//! off tokio's blocking pool too, for two reasons: one long-lived thread keeps the
//! document's allocations in one malloc arena (spread over the pool's threads, a
//! 10,000-item publication left about 25 MiB more resident), and its CPU priority can be
//! lowered for good, so on a small box the tills' HTTP and writer threads come first.

use tokio::sync::oneshot;

/// How much lower than the rest of the node the catalog thread runs (`nice` increment).
const NICE_INCREMENT: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

pub(super) struct CatalogWorker {
    /// `None` when the thread could not be started: the blocking pool stands in.
    jobs: Option<std::sync::mpsc::Sender<Job>>,
}

impl CatalogWorker {
    pub(super) fn spawn() -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("sync-catalog".into())
            .spawn(move || {
                lower_priority();
                // Ends when the receiving task drops its worker.
                for job in queue {
                    job();
                }
            });
        match started {
            Ok(_) => Self { jobs: Some(jobs) },
            Err(e) => {
                tracing::warn!(error = %e, "no thread for catalog work; the blocking pool does it");
                Self { jobs: None }
            }
        }
    }

    /// Runs `work` on the catalog thread and waits for its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let stopped = || "the catalog thread stopped".to_owned();
        let Some(jobs) = &self.jobs else {
            return tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| format!("catalog work failed: {e}"));
        };
        let (reply, answer) = oneshot::channel();
        jobs.send(Box::new(move || {
            let _ = reply.send(work());
        }))
        .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

/// Raises this thread's nice value (on Linux the nice value is per thread).
#[cfg(unix)]
fn lower_priority() {
    // SAFETY: nice(2) takes an integer and changes only the scheduling priority of the
    // calling thread; no memory is involved.
    let niced = unsafe { libc::nice(NICE_INCREMENT) };
    if niced == -1 {
        tracing::debug!("the catalog thread keeps the node's CPU priority");
    }
}

#[cfg(not(unix))]
fn lower_priority() {}
