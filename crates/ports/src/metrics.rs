//! Where the runtime reports what it did; the app exports it as Prometheus text.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    Completed,
    Failed,
}

/// Implementations must be cheap and thread-safe: they are called on the hot path.
pub trait MetricsSink: Send + Sync {
    fn task_received(&self, executor_type: &str);
    fn task_finished(&self, executor_type: &str, outcome: TaskOutcome, duration: Duration);
    fn queue_size(&self, executor_type: &str, size: usize);
    fn registry_size(&self, size: usize);
}

/// Discards everything; for tests and for `metrics.enabled=false`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn task_received(&self, _: &str) {}
    fn task_finished(&self, _: &str, _: TaskOutcome, _: Duration) {}
    fn queue_size(&self, _: &str, _: usize) {}
    fn registry_size(&self, _: usize) {}
}
