//! Tuning knobs of the reference engine.

use std::path::PathBuf;
use std::time::Duration;

use gamelan_domain::RetryPolicy;

/// How the engine judges liveness, times out deliveries, retries and stores its state.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// An executor without a heartbeat (or registration) for longer than this is declared
    /// dead: its unfinished tasks go to other executors and it receives nothing until it
    /// heartbeats again. The Java engine's `gamelan.engine.heartbeat.timeout`.
    pub heartbeat_timeout: Duration,
    /// A task delivered (or acknowledged) without a result after this long goes back to its
    /// queue as a new attempt. A task whose own `timeout_seconds` is longer gets that long.
    pub ack_timeout: Duration,
    /// How often the sweeper checks liveness, ack timeouts and due retries.
    pub sweep_interval: Duration,
    /// Engine-side retries of FAILED results whose error is technical (see
    /// [`crate::engine`] for the rule); `max_attempts` is the number of retries after the
    /// first execution, as in the domain type. A submission may override it.
    pub retry: RetryPolicy,
    /// Where accepted tasks and final results are stored; `None` keeps everything in
    /// memory (ephemeral: a restart forgets all).
    pub data_dir: Option<PathBuf>,
    /// Long polls allowed to wait at once; past that `poll` answers `Overloaded` so a flood of
    /// REST pollers cannot pin every server thread.
    pub max_long_polls: usize,
    /// How long a finished task stays queryable (by id and in the completion feed) after
    /// its result; then it is forgotten, in memory and in the store. Bounds the engine's
    /// memory and disk to the tasks of this window.
    pub retention: Duration,
    /// At most this many finished tasks are kept (at least 1); past it the oldest results
    /// are forgotten first, whatever their age.
    pub max_retained: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            heartbeat_timeout: Duration::from_secs(60),
            ack_timeout: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            data_dir: None,
            max_long_polls: 256,
            retention: Duration::from_secs(3600),
            max_retained: 100_000,
        }
    }
}

impl EngineSettings {
    /// In-memory settings with the defaults.
    pub fn ephemeral() -> Self {
        Self::default()
    }

    /// Durable settings storing under `dir`.
    pub fn durable(dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: Some(dir.into()),
            ..Self::default()
        }
    }
}
