//! What users implement: a workflow executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gamelan_domain::{ExecutionError, ExecutorMetadata, JsonObject, Task};

/// Shared flag an executor polls to stop early (engine cancellation, timeout, shutdown).
#[derive(Debug, Clone, Default)]
pub struct CancellationToken(Arc<AtomicBool>);

impl CancellationToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Per-execution context handed to [`WorkflowExecutor::execute`].
#[derive(Debug, Clone)]
pub struct ExecutionContext {
    cancel: CancellationToken,
    deadline: Instant,
    retry: u32,
}

impl ExecutionContext {
    pub fn new(cancel: CancellationToken, deadline: Instant, retry: u32) -> Self {
        Self {
            cancel,
            deadline,
            retry,
        }
    }

    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// When the runtime will report TIMEOUT for this task, whatever the executor does.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// How many local retries preceded this execution (0 on the first run).
    pub fn retry(&self) -> u32 {
        self.retry
    }

    /// A convenience for long loops: `Err` once cancelled, so `?` stops the work.
    pub fn checkpoint(&self) -> Result<(), ExecutionError> {
        if self.is_cancelled() {
            Err(ExecutionError::Cancelled("cancelled while running".into()))
        } else {
            Ok(())
        }
    }
}

/// A workflow executor: the unit of business logic a runtime hosts.
///
/// Contract: `execute` is called on a worker-pool thread and may block (it is the executor's
/// own thread for the duration). It must be thread-safe: the pool runs up to
/// `max_concurrent_tasks` executions of the same executor at once. A panic is caught and
/// reported as `EXECUTOR_PANIC`; the thread survives. Return
/// [`ExecutionError::Business`] for expected failures (never retried) and
/// [`ExecutionError::Technical`] for infrastructure trouble (retried by policy).
pub trait WorkflowExecutor: Send + Sync + 'static {
    fn metadata(&self) -> ExecutorMetadata;

    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError>;
}
