use std::time::Duration;

/// Why a benchmark could not produce figures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("the {0} transport is not wired into `gamelan bench` yet: {1}")]
    NotWired(&'static str, String),
    #[error("cannot start the {what}: {reason}")]
    Spawn { what: String, reason: String },
    #[error("the {what} did not {event} within {timeout:?}{log}")]
    NotReady {
        what: String,
        event: &'static str,
        timeout: Duration,
        /// The last lines the process logged, for the reader to see why.
        log: String,
    },
    #[error("HTTP call to {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("the engine refused a task: {0}")]
    Refused(String),
    #[error("engine: {0}")]
    Engine(#[from] gamelan_ports::EngineError),
    #[error("executor runtime: {0}")]
    Runtime(String),
    #[error("raw {name} baseline: {reason}")]
    Baseline { name: &'static str, reason: String },
    #[error("celery peer: {0}")]
    Peer(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl BenchError {
    pub(crate) fn http(url: &str, reason: impl std::fmt::Display) -> Self {
        Self::Http {
            url: url.to_owned(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn runtime(reason: impl std::fmt::Display) -> Self {
        Self::Runtime(reason.to_string())
    }
}
