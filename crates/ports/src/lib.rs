//! Ports: the synchronous traits between the runtime (or engine) and the outside world.
//!
//! No async type and no adapter type crosses these traits. Adapters that need an async
//! runtime (gRPC) own it privately and bridge through channels, so the worker pool stays a
//! plain thread pool and any transport can be swapped for another, or for the in-memory one
//! in tests.

pub mod auth;
pub mod clock;
pub mod engine;
pub mod executor;
pub mod metrics;
pub mod sync;
pub mod topics;
pub mod transport;

pub use auth::{AllowAll, AuthError, NoToken, TokenSource, TokenVerifier};
pub use clock::{Clock, SystemClock};
pub use engine::{
    EngineError, EngineService, EngineStatistics, ExecutorView, PolledTask, Registered, StreamId,
    SubmitRequest, TaskSink, TaskState, TaskView,
};
pub use executor::{CancellationToken, Deferred, ExecutionContext, Settle, WorkflowExecutor};
pub use gamelan_domain as domain;
pub use metrics::{MetricsSink, NoMetrics, TaskOutcome};
pub use transport::{
    EngineTransport, HEARTBEAT_TIMEOUT_KEY, HealthStatus, Heartbeat, Inbound, Registration,
    ReportOutcome, TransportError,
};
