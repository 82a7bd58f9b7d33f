//! What users implement: a workflow executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gamelan_domain::{ExecutionError, ExecutorMetadata, JsonObject, Task};

/// Shared flag an executor polls to stop early (engine cancellation, timeout, shutdown).
#[derive(Debug, Clone, Default)]
pub struct CancellationToken(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    flag: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl CancellationToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::Release);
        // Taking the lock orders the store before any waiter's re-check.
        drop(self.0.lock.lock());
        self.0.wake.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    /// Blocks up to `timeout` or until cancelled; returns whether it was cancelled. Lets an
    /// executor wait on I/O or a back-off without ignoring cancellation.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut guard) = self.0.lock.lock() else {
            return self.is_cancelled();
        };
        while !self.is_cancelled() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.0.wake.wait_timeout(guard, left) {
                Ok((g, _)) => guard = g,
                Err(_) => break,
            }
        }
        self.is_cancelled()
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
    /// Defaults to the type's name in kebab case; the `gamelan::executor!` registration macro
    /// overrides it with the declared type, transport and limits.
    fn metadata(&self) -> ExecutorMetadata {
        ExecutorMetadata::new(kebab_type_name(std::any::type_name::<Self>()))
    }

    fn execute(&self, task: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError>;
}

/// `my_crate::CalculateTaxExecutor` -> `calculate-tax-executor`.
fn kebab_type_name(full: &str) -> String {
    let short = full.rsplit("::").next().unwrap_or(full);
    let mut out = String::with_capacity(short.len() + 4);
    for (i, ch) in short.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_names() {
        assert_eq!(kebab_type_name("a::b::CalculateTax"), "calculate-tax");
        assert_eq!(kebab_type_name("Echo"), "echo");
    }

    #[test]
    fn wait_returns_when_cancelled_from_another_thread() {
        let t = CancellationToken::new();
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.wait(Duration::from_secs(30)));
        t.cancel();
        assert!(h.join().unwrap());
        assert!(!CancellationToken::new().wait(Duration::from_millis(1)));
    }
}
