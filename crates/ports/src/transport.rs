//! Executor side: how a runtime talks to an engine, whatever the wire (gRPC, Kafka, REST,
//! in-memory).

use std::collections::BTreeMap;
use std::time::Duration;

use gamelan_domain::{Acceptance, ExecutorMetadata, Task, TaskResult};
use serde::{Deserialize, Serialize};

/// One executor type as announced to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// `<runtime-id>-<executor-type>`: stable across restarts so the engine sees one executor.
    pub executor_id: String,
    pub metadata: ExecutorMetadata,
    /// Address the engine pushes to; empty for pull delivery.
    #[serde(default)]
    pub endpoint: String,
    /// Free-form registration metadata (`gamelan.grpc.delivery`, `gamelan.executor.version`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Registration metadata key with the executor's own heartbeat timeout, in whole
/// milliseconds: the engine declares this executor dead after that long without a heartbeat
/// instead of after its engine-wide default. One key for every wire (gRPC `metadata`, REST
/// `metadata`, Kafka `ExecutorRecord.metadata`).
pub const HEARTBEAT_TIMEOUT_KEY: &str = "gamelan.heartbeat.timeout-ms";

impl Registration {
    /// The heartbeat timeout the executor asked for, if any; an unreadable value is an error
    /// naming the key, so a typo is refused rather than silently replaced by the default.
    pub fn heartbeat_timeout(&self) -> Result<Option<Duration>, String> {
        let Some(raw) = self.attributes.get(HEARTBEAT_TIMEOUT_KEY) else {
            return Ok(None);
        };
        match raw.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
            _ => Err(format!(
                "metadata {HEARTBEAT_TIMEOUT_KEY} must be a whole number of milliseconds greater than 0, got '{raw}'"
            )),
        }
    }
}

/// Load signal sent with every heartbeat (wire `ExecutorHealth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    #[default]
    Ready,
    Busy,
    Saturated,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "READY",
            Self::Busy => "BUSY",
            Self::Saturated => "SATURATED",
        }
    }

    /// READY below half capacity, SATURATED at capacity, BUSY between.
    pub fn from_load(current: u32, capacity: u32) -> Self {
        if capacity == 0 || current >= capacity {
            Self::Saturated
        } else if current * 2 >= capacity {
            Self::Busy
        } else {
            Self::Ready
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "READY" => Some(Self::Ready),
            "BUSY" => Some(Self::Busy),
            "SATURATED" => Some(Self::Saturated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub executor_id: String,
    pub current_task_count: u32,
    pub status: HealthStatus,
    pub completed_tasks: u64,
    pub failed_tasks: u64,
    pub cpu_usage: f64,
    pub memory_usage: f64,
}

/// Something the engine sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Task(Task),
    Cancel { task_id: String, reason: String },
}

/// The engine's verdict on one reported result. `Rejected` is final too (the engine will
/// never accept it, e.g. a result for a task it never dispatched), so the runtime drops it
/// from the outbox and logs the reason instead of resending forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    Accepted(Acceptance),
    Rejected(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The engine cannot be reached or the connection broke: reconnect with backoff.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// The engine refused the credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The engine refused the request as invalid; retrying the same request will not help.
    #[error("rejected by engine: {0}")]
    Rejected(String),
    /// The peer sent something that does not decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The transport is closed (shutdown).
    #[error("transport closed")]
    Closed,
}

impl TransportError {
    /// Errors after which the runtime goes FAILED and reconnects.
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Protocol(_))
    }
}

/// A connection to an engine. Implementations are thread-safe: the runtime calls `receive`
/// from its intake thread while the reporter calls `report` and the heartbeat thread calls
/// `heartbeat`, concurrently. Every method blocks at most for its configured request timeout
/// (and `receive` for `wait`), never indefinitely.
pub trait EngineTransport: Send + Sync {
    /// Short name for logs and metrics ("grpc", "kafka", "rest", "local").
    fn name(&self) -> &'static str;

    /// Opens (or re-opens after a loss) the connection. Idempotent.
    fn connect(&self) -> Result<(), TransportError>;

    /// Announces executors; called after every (re)connect.
    fn register(&self, registrations: &[Registration]) -> Result<(), TransportError>;

    fn heartbeat(&self, heartbeats: &[Heartbeat]) -> Result<(), TransportError>;

    /// Waits up to `wait` for engine messages and returns at most `max` tasks (cancellations
    /// are not counted and always delivered). `max == 0` is the backpressure signal: the
    /// transport must take no more tasks from the engine (grant no credit, not poll) until a
    /// later call raises it again. An empty vector means nothing arrived in time.
    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Inbound>, TransportError>;

    /// Sends a batch of results; on `Ok`, one outcome per result, in order. On `Err` none is
    /// known to be delivered and the runtime keeps them all in its outbox.
    fn report(&self, results: &[TaskResult]) -> Result<Vec<ReportOutcome>, TransportError>;

    /// Hands back tasks that were received but never started (graceful shutdown), so the
    /// engine can dispatch them elsewhere without waiting for a timeout.
    fn release(&self, tasks: &[Task]) -> Result<(), TransportError>;

    fn unregister(&self, executor_ids: &[String]) -> Result<(), TransportError>;

    /// Closes the connection for good; later calls return [`TransportError::Closed`].
    fn close(&self);
}

/// Fallback registration timeout and heartbeat hints shared by adapters.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
