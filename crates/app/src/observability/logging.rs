//! Logging setup: `log` + `env_logger`, with the Java runtime's log categories as targets
//! (`gamelan.executor.runtime`, `gamelan.executor.task`, `gamelan.executor.error`).

/// Installs the logger once. `filters` is an env_logger filter string built from the
/// configuration's category levels; `RUST_LOG`, when set, wins.
pub fn init(filters: &str) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| filters.to_owned());
    let _ = env_logger::Builder::new()
        .parse_filters(&spec)
        .format_timestamp_millis()
        .try_init();
}
