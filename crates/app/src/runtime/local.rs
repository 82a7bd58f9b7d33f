//! In-memory transport (communication type LOCAL): an engine stand-in living in the same
//! process. It makes runtime tests fast and lets them inject faults (engine down, failed
//! reports) that are awkward to provoke over a socket; every real transport is tested over
//! real sockets as well.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gamelan_domain::{Acceptance, Task, TaskResult};
use gamelan_ports::{
    EngineTransport, Heartbeat, Inbound, Registration, ReportOutcome, TransportError,
};

#[derive(Default)]
struct State {
    /// Tasks only; cancellations wait in `cancels` so they never queue behind tasks.
    inbox: VecDeque<Inbound>,
    cancels: Vec<Inbound>,
    results: Vec<TaskResult>,
    seen: HashSet<(String, u32)>,
    registrations: Vec<Registration>,
    registrations_total: usize,
    heartbeats: Vec<Heartbeat>,
    released: Vec<Task>,
    unregistered: Vec<String>,
    down: bool,
    fail_reports: usize,
    connects: usize,
    connect_attempts: usize,
    /// Every credit (`max`) the runtime asked with, for backpressure assertions.
    zero_credit_polls: usize,
    duplicates: usize,
    report_batches: Vec<usize>,
}

/// The engine side of the in-memory transport: push tasks, read results, inject faults.
#[derive(Clone, Default)]
pub struct LocalEngine {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl LocalEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.inner.1.notify_all();
    }

    /// A transport connected to this engine.
    pub fn transport(&self) -> Arc<LocalTransport> {
        Arc::new(LocalTransport {
            engine: self.clone(),
            closed: AtomicBool::new(false),
        })
    }

    pub fn push_task(&self, task: Task) {
        self.state().inbox.push_back(Inbound::Task(task));
        self.changed();
    }

    pub fn push_cancel(&self, task_id: &str, reason: &str) {
        self.state().cancels.push(Inbound::Cancel {
            task_id: task_id.to_owned(),
            reason: reason.to_owned(),
        });
        self.changed();
    }

    /// Tasks not yet taken by the runtime.
    pub fn queued(&self) -> usize {
        self.state()
            .inbox
            .iter()
            .filter(|m| matches!(m, Inbound::Task(_)))
            .count()
    }

    /// Every result accepted (first report of each task id and attempt).
    pub fn results(&self) -> Vec<TaskResult> {
        self.state().results.clone()
    }

    /// Size of every successful report call, in order.
    pub fn report_batches(&self) -> Vec<usize> {
        self.state().report_batches.clone()
    }

    pub fn duplicates(&self) -> usize {
        self.state().duplicates
    }

    pub fn registrations(&self) -> Vec<Registration> {
        self.state().registrations.clone()
    }

    pub fn registrations_total(&self) -> usize {
        self.state().registrations_total
    }

    pub fn heartbeats(&self) -> Vec<Heartbeat> {
        self.state().heartbeats.clone()
    }

    pub fn released(&self) -> Vec<Task> {
        self.state().released.clone()
    }

    pub fn unregistered(&self) -> Vec<String> {
        self.state().unregistered.clone()
    }

    pub fn connects(&self) -> usize {
        self.state().connects
    }

    /// Every connect call, failed ones included.
    pub fn connect_attempts(&self) -> usize {
        self.state().connect_attempts
    }

    pub fn zero_credit_polls(&self) -> usize {
        self.state().zero_credit_polls
    }

    /// While down, every call fails with `Unavailable` (a lost connection).
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
        self.changed();
    }

    /// The next `n` report calls fail with `Unavailable`.
    pub fn fail_next_reports(&self, n: usize) {
        self.state().fail_reports = n;
    }

    /// Waits until `pred` holds over the engine state or `timeout` passes.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&LocalView<'_>) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.inner;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if pred(&LocalView(&s)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cv
                .wait_timeout(s, left.min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Read-only view of the engine state inside [`LocalEngine::wait_until`].
pub struct LocalView<'a>(&'a State);

impl LocalView<'_> {
    pub fn results(&self) -> &[TaskResult] {
        &self.0.results
    }
    pub fn queued(&self) -> usize {
        self.0.inbox.len()
    }
    pub fn registrations_total(&self) -> usize {
        self.0.registrations_total
    }
    pub fn heartbeats(&self) -> usize {
        self.0.heartbeats.len()
    }
    pub fn released(&self) -> usize {
        self.0.released.len()
    }
    pub fn unregistered(&self) -> usize {
        self.0.unregistered.len()
    }
    pub fn zero_credit_polls(&self) -> usize {
        self.0.zero_credit_polls
    }
    pub fn connect_attempts(&self) -> usize {
        self.0.connect_attempts
    }
}

/// The executor side of the in-memory transport.
pub struct LocalTransport {
    engine: LocalEngine,
    closed: AtomicBool,
}

impl LocalTransport {
    fn check(&self, s: &State) -> Result<(), TransportError> {
        if self.closed.load(Ordering::Acquire) {
            Err(TransportError::Closed)
        } else if s.down {
            Err(TransportError::Unavailable("local engine is down".into()))
        } else {
            Ok(())
        }
    }
}

impl EngineTransport for LocalTransport {
    fn name(&self) -> &'static str {
        "local"
    }

    fn connect(&self) -> Result<(), TransportError> {
        let mut s = self.engine.state();
        s.connect_attempts += 1;
        let checked = self.check(&s);
        if checked.is_ok() {
            s.connects += 1;
        }
        drop(s);
        self.engine.changed();
        checked
    }

    fn register(&self, registrations: &[Registration]) -> Result<(), TransportError> {
        let mut s = self.engine.state();
        self.check(&s)?;
        s.registrations_total += registrations.len();
        for r in registrations {
            s.registrations.retain(|x| x.executor_id != r.executor_id);
            s.registrations.push(r.clone());
        }
        drop(s);
        self.engine.changed();
        Ok(())
    }

    fn heartbeat(&self, heartbeats: &[Heartbeat]) -> Result<(), TransportError> {
        let mut s = self.engine.state();
        self.check(&s)?;
        s.heartbeats.extend_from_slice(heartbeats);
        drop(s);
        self.engine.changed();
        Ok(())
    }

    fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Inbound>, TransportError> {
        let deadline = Instant::now() + wait;
        let (lock, cv) = &*self.engine.inner;
        let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if max == 0 {
            s.zero_credit_polls += 1;
            cv.notify_all();
        }
        loop {
            self.check(&s)?;
            let mut out = std::mem::take(&mut s.cancels);
            let n = max.min(s.inbox.len());
            out.extend(s.inbox.drain(..n));
            if !out.is_empty() {
                return Ok(out);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            s = cv
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn report(&self, results: &[TaskResult]) -> Result<Vec<ReportOutcome>, TransportError> {
        let mut s = self.engine.state();
        self.check(&s)?;
        if s.fail_reports > 0 {
            s.fail_reports -= 1;
            return Err(TransportError::Unavailable(
                "injected report failure".into(),
            ));
        }
        s.report_batches.push(results.len());
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            let key = (r.task_id().to_owned(), r.attempt());
            if s.seen.insert(key) {
                s.results.push(r.clone());
                out.push(ReportOutcome::Accepted(Acceptance::Accept));
            } else {
                s.duplicates += 1;
                out.push(ReportOutcome::Accepted(Acceptance::AlreadyProcessed));
            }
        }
        drop(s);
        self.engine.changed();
        Ok(out)
    }

    fn release(&self, tasks: &[Task]) -> Result<(), TransportError> {
        let mut s = self.engine.state();
        self.check(&s)?;
        s.released.extend_from_slice(tasks);
        drop(s);
        self.engine.changed();
        Ok(())
    }

    fn unregister(&self, executor_ids: &[String]) -> Result<(), TransportError> {
        let mut s = self.engine.state();
        self.check(&s)?;
        s.unregistered.extend_from_slice(executor_ids);
        drop(s);
        self.engine.changed();
        Ok(())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.engine.changed();
    }
}
