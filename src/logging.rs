//! Operational logging: to the journal when journald is there, to stderr otherwise.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// journald's native protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// True when journald is listening.
pub fn journal_available() -> bool {
    std::path::Path::new(JOURNAL_SOCKET).exists()
}

/// Whether alerts and logs go to the journal (decided once by [`init`]).
static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// True when [`init`] chose the journal.
pub fn to_journal() -> bool {
    JOURNAL.get().copied().unwrap_or(false)
}

/// Logs to stderr whatever the environment (replay, check-config).
pub fn init_stderr() {
    let _ = JOURNAL.set(false);
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(filter()),
        )
        .try_init();
}

fn filter() -> EnvFilter {
    let level = std::env::var("SCRAM_LOG").unwrap_or_else(|_| "info".into());
    // Alerts are never filtered out by the operational log level.
    EnvFilter::try_new(format!("{level},{}=info", crate::alert::TARGET))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. `SCRAM_LOG` overrides the level filter (default `info`);
/// `SCRAM_LOG_TARGET=stderr` or `journal` overrides the choice of destination.
pub fn init() {
    let target = std::env::var("SCRAM_LOG_TARGET").unwrap_or_default();
    let journald = (target == "journal" || (target != "stderr" && journal_available()))
        .then(tracing_journald::layer)
        .and_then(Result::ok)
        .map(|l| l.with_field_prefix(None).with_filter(filter()));
    let _ = JOURNAL.set(journald.is_some());
    // Under journald, stderr is usually the journal too: log once, through the native protocol.
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(journald)
        .with(stderr)
        .try_init();
}
