//! Logging: `tracing` with fields; human format on a terminal, JSON otherwise, journald under
//! systemd. `RUST_LOG` overrides the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Added to the configured level (not to `RUST_LOG`, which is taken as given): automerge
/// logs every error it returns at ERROR (`#[instrument(err)]` on its loads), and sync loads
/// each bundle it receives once only to verify the chunk's checksum, a load that fails by
/// design for the bundle's missing dependencies (`crdt::doc::changes::decode_bundle`). So
/// every bundle made a false ERROR line: HQ logged dozens a minute while a lane re-offered
/// a backlog. Each automerge error reaches our code as a value and is logged there, with
/// its context.
const QUIET: &str = "automerge::automerge=off";

/// Installs the global subscriber. Called once, by `main`'s commands; a second call is a no-op.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| configured(level));
    let format = match format {
        LogFormat::Auto if std::env::var_os("JOURNAL_STREAM").is_some() => LogFormat::Journald,
        LogFormat::Auto if std::io::stderr().is_terminal() => LogFormat::Human,
        LogFormat::Auto => LogFormat::Json,
        other => other,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => registry.with(layer).try_init(),
            Err(_) => registry.with(json_layer()).try_init(),
        },
        LogFormat::Json => registry.with(json_layer()).try_init(),
        _ => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already initialised (tests, or a command that runs another): keep the first.
    drop(result);
}

/// The filter of a configured level (`info`, or directives like `warn,rumqttd=off`).
fn configured(level: &str) -> EnvFilter {
    EnvFilter::try_new(format!("{level},{QUIET}"))
        .or_else(|_| EnvFilter::try_new(format!("info,{QUIET}")))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

fn json_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(std::io::stderr)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::crdt::doc::{WriterId, bundle_authors};
    use crate::crdt::stock::StockDoc;
    use crate::domain::stock::Movement;

    /// Counts the ERROR events that pass the filter.
    struct Errors(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Errors {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::ERROR {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn errors_while(filter: EnvFilter, work: impl FnOnce()) -> usize {
        let count = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(Errors(count.clone()));
        tracing::subscriber::with_default(subscriber, work);
        count.load(Ordering::Relaxed)
    }

    // Failed before: checking a backlog bundle logged automerge's MissingDeps at ERROR.
    #[test]
    fn checking_a_received_bundle_logs_no_error() {
        let writer = WriterId::new("s1.lane1").unwrap();
        let mut lane = StockDoc::genesis("s1", 0, writer).unwrap();
        let genesis = lane.core().heads();
        for i in 0..5 {
            let sale = Movement {
                sku: format!("SKU{i}"),
                delta: -1,
            };
            lane.apply_movements(&[sale], i).unwrap();
        }
        let bundle = lane.core().bundle_since(&genesis).unwrap();
        let check = || {
            bundle_authors(&bundle).unwrap();
        };
        assert!(
            errors_while(EnvFilter::new("info"), check) > 0,
            "automerge logs its failed load at ERROR"
        );
        assert_eq!(errors_while(configured("info"), check), 0);
        assert_eq!(errors_while(configured("warn,rumqttd=off"), check), 0);
    }
}
