//! Logging: tracing with a human format by default and JSON lines by setting. Initialised once
//! per process; tests call [`init_for_tests`], which stays quiet unless `TEST_LOG=1`.

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// Install the global subscriber for the server process.
pub fn init(settings: &Settings) {
    // RUST_LOG, when set, wins: it is what people reach for when debugging one module.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(settings.log.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Tests share one process; the first caller installs the subscriber.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}
