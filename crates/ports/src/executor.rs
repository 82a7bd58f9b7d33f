//! What users implement: a workflow executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gamelan_domain::{ExecutionError, ExecutorMetadata, JsonObject, Task, codes};

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

/// Where a task's outcome goes once it was deferred. The runtime installs one per execution;
/// exactly one outcome per task is accepted, whoever offers it first (the completion handle,
/// the deadline, a cancel, shutdown).
pub trait Settle: Send + Sync {
    /// Offers the task's outcome; `false` when the task was already settled (timed out,
    /// cancelled, completed earlier) and this outcome was dropped.
    fn settle(&self, outcome: Result<JsonObject, ExecutionError>) -> bool;
}

/// Per-execution context handed to [`WorkflowExecutor::execute`].
#[derive(Clone)]
pub struct ExecutionContext {
    cancel: CancellationToken,
    deadline: Instant,
    retry: u32,
    settle: Arc<dyn Settle>,
    /// Set for contexts made outside a runtime: where their deferred outcome waits.
    local: Option<Arc<LocalOutcome>>,
    deferred: Arc<AtomicBool>,
}

impl std::fmt::Debug for ExecutionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionContext")
            .field("cancel", &self.cancel)
            .field("deadline", &self.deadline)
            .field("retry", &self.retry)
            .field("deferred", &self.is_deferred())
            .finish_non_exhaustive()
    }
}

impl ExecutionContext {
    /// A context outside any runtime (unit tests of an executor): a deferred outcome is
    /// kept here and read back with [`ExecutionContext::wait_deferred`].
    pub fn new(cancel: CancellationToken, deadline: Instant, retry: u32) -> Self {
        let local = Arc::new(LocalOutcome::default());
        Self {
            cancel,
            deadline,
            retry,
            settle: Arc::clone(&local) as Arc<dyn Settle>,
            local: Some(local),
            deferred: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Routes deferred outcomes to `settle` (the runtime's worker pool).
    #[must_use]
    pub fn with_settle(mut self, settle: Arc<dyn Settle>) -> Self {
        self.settle = settle;
        self.local = None;
        self
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

    /// Defers this task's result to the returned handle, so `execute` can return at once
    /// and give its pool thread back while the I/O it started is in flight.
    ///
    /// After `defer()`, an `Ok` returned by `execute` is ignored: only the handle settles
    /// the task. An `Err` (or a panic) from `execute` still settles it, so `?` on the
    /// call that starts the I/O keeps working; a later completion is then dropped. The
    /// task keeps its concurrency permits until it is settled, its deadline still fires
    /// TIMEOUT and an engine cancel still ends it CANCELLED (the handle's
    /// [`Deferred::is_cancelled`] turns true). A handle dropped without completing fails
    /// the task with the technical code `DEFERRED_DROPPED` (retried by the retry policy):
    /// it never hangs. Call it once per execution; a second handle settles the same task.
    pub fn defer(&self) -> Deferred {
        self.deferred.store(true, Ordering::SeqCst);
        Deferred {
            settle: Some(Arc::clone(&self.settle)),
            cancel: self.cancel.clone(),
            deadline: self.deadline,
        }
    }

    /// Whether [`ExecutionContext::defer`] was called during this execution.
    pub fn is_deferred(&self) -> bool {
        self.deferred.load(Ordering::SeqCst)
    }

    /// For contexts made with [`ExecutionContext::new`]: waits up to `timeout` for the
    /// deferred outcome and takes it. `None` under a runtime (the runtime takes it) or when
    /// nothing arrived in time.
    pub fn wait_deferred(&self, timeout: Duration) -> Option<Result<JsonObject, ExecutionError>> {
        let local = self.local.as_ref()?;
        let deadline = Instant::now() + timeout;
        let mut slot = local.slot.lock().ok()?;
        loop {
            if let Some(outcome) = slot.take() {
                return Some(outcome);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            slot = local.ready.wait_timeout(slot, left).ok()?.0;
        }
    }
}

/// The completion handle of a deferred task (see [`ExecutionContext::defer`]). `Send` and
/// `'static`: move it into an I/O callback, another runtime or a timer and complete it from
/// any thread.
#[must_use = "dropping a Deferred without completing it fails the task with DEFERRED_DROPPED"]
pub struct Deferred {
    settle: Option<Arc<dyn Settle>>,
    cancel: CancellationToken,
    deadline: Instant,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("pending", &self.settle.is_some())
            .field("cancel", &self.cancel)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Deferred {
    /// Settles the task. Returns `false` when it was already settled (deadline passed,
    /// cancelled, shut down) and this outcome was dropped.
    pub fn complete(mut self, outcome: Result<JsonObject, ExecutionError>) -> bool {
        self.settle.take().is_some_and(|s| s.settle(outcome))
    }

    /// True once the engine cancelled the task, its deadline passed or the runtime shut
    /// down: the I/O may be abandoned, its result would be dropped.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// When the runtime reports TIMEOUT if the handle has not completed by then.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(s) = self.settle.take() {
            s.settle(Err(ExecutionError::technical(
                codes::DEFERRED_DROPPED,
                "the deferred result's handle was dropped without completing",
            )));
        }
    }
}

/// The outcome holder of a context made outside a runtime.
#[derive(Default)]
struct LocalOutcome {
    slot: Mutex<Option<Result<JsonObject, ExecutionError>>>,
    ready: Condvar,
    settled: AtomicBool,
}

impl Settle for LocalOutcome {
    fn settle(&self, outcome: Result<JsonObject, ExecutionError>) -> bool {
        if self.settled.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(outcome);
        }
        self.ready.notify_all();
        true
    }
}

/// A workflow executor: the unit of business logic a runtime hosts.
///
/// Contract: `execute` is called on a worker-pool thread and may block (it is the executor's
/// own thread for the duration). An executor waiting on I/O should instead start the I/O,
/// hand [`ExecutionContext::defer`]'s handle to whatever completes it and return at once. It must be thread-safe: the pool runs up to
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

    #[test]
    fn a_deferred_outcome_arrives_from_another_thread_once() {
        let ctx = ExecutionContext::new(CancellationToken::new(), Instant::now(), 0);
        assert!(!ctx.is_deferred());
        let d = ctx.defer();
        assert!(ctx.is_deferred());
        let h = std::thread::spawn(move || d.complete(Ok(JsonObject::new())));
        assert!(h.join().unwrap());
        assert_eq!(
            ctx.wait_deferred(Duration::from_secs(5)),
            Some(Ok(JsonObject::new()))
        );
        assert!(
            !ctx.defer().complete(Ok(JsonObject::new())),
            "second outcome dropped"
        );
    }

    #[test]
    fn a_dropped_handle_is_a_technical_failure() {
        let ctx = ExecutionContext::new(CancellationToken::new(), Instant::now(), 0);
        drop(ctx.defer());
        let err = ctx
            .wait_deferred(Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.code(), codes::DEFERRED_DROPPED);
    }
}
