//! Logging: one subscriber factory for text or JSON logs, filtered by `RUST_LOG` (default
//! `info`). Logs go to stderr so stdout stays for command output (`listening on …`).

use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::LogFormat;

/// Installs the global subscriber once; later calls are no-ops (tests call it many times).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
