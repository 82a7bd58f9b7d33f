//! The reference engine: the executor-facing half of a Gamelan engine (executor table,
//! liveness by heartbeat, per-type task queues, load balancing, idempotent result intake,
//! engine-side retries) plus a small user API (submit, task lookup, completion feed). Every
//! transport adapter serves the same [`Engine`] through [`gamelan_ports::EngineService`].
//!
//! # Rules worth knowing
//! - **Attempts.** A task is identified by `run_id:node_id`; its task id is
//!   `run_id:node_id:attempt` of the current attempt. Every time a task is taken back from an
//!   executor that may have started it (stream closed, executor declared dead or
//!   unregistered, ack timeout, `release`) and on every engine-side retry, it gets a new
//!   attempt with a new execution token; a late result of an older attempt is then STALE
//!   and nothing is applied twice. A restart is not an attempt (see `restore`): the
//!   attempt always counts the deliveries that could have run the task. `task()` accepts
//!   the id of any attempt (the attempt part is ignored), and every view carries the
//!   submission id (`run_id:node_id:1`), so the id `submit` returned keeps working.
//! - **Retries.** A FAILED result is retried by the engine (after the policy's delay) only
//!   when its error says `context.kind == "technical"`, as
//!   `gamelan_domain::ExecutionError::to_error_info` marks technical failures, and retries
//!   are left (`SubmitRequest::max_attempts`, else `EngineSettings::retry.max_attempts`,
//!   counted as retries after the first execution). Business failures, TIMEOUT,
//!   EXECUTOR_PANIC, CANCELLED and NO_EXECUTOR are final; NO_EXECUTOR means the reporting
//!   executor does not host the type.
//! - **Capacity.** An executor gets a task only while alive and while its in-flight count
//!   is below `max_concurrent_tasks` and its open routes have room: an attached stream's
//!   `max_in_flight`, or a waiting long poll's `max`. Otherwise tasks wait in their queue.
//! - **Submission** is idempotent by `(runId, nodeId)`.
//! - **Durability.** With a data directory, `submit` and `report` answer only after the
//!   group commit that holds their writes, a task leaves the engine only after the commit
//!   of its delivery record, and lookups and the completion feed show a result only once it
//!   is committed. On open, finished tasks are back as they were; unfinished ones keep their
//!   attempt, queued when it never left, else waiting for the executor it went to. Attempt
//!   changes are written too but not waited for. A re-registering executor keeps what it
//!   had in flight (it may still report it); tasks lost with a crashed executor that came
//!   back come home after the ack timeout, or at once when its stream is detached.

mod dispatch;
mod executors;
mod ids;
mod intake;
mod metrics;
mod record;
mod restore;
mod retention;
mod service;
mod settings;
mod state;
mod store;
mod sweep;
pub mod testing;
mod unserved;

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use gamelan_domain::{Acceptance, Task, TaskResult};
use gamelan_ports::{
    Clock, EngineError, EngineService, EngineStatistics, ExecutorView, Heartbeat, PolledTask,
    Registered, Registration, StreamId, SubmitRequest, TaskSink, TaskView,
};

pub use settings::EngineSettings;

use service::Shared;
use state::Inner;

#[derive(Default)]
struct Threads {
    sweeper: Option<(Sender<()>, JoinHandle<()>)>,
    writer: Option<JoinHandle<()>>,
}

/// The reference engine. Cheap to share (`Arc`); all methods are thread-safe.
pub struct Engine {
    shared: Arc<Shared>,
    threads: Mutex<Threads>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the engine: restores the store when `settings.data_dir` is set, then starts
    /// the sweeper (and the store writer).
    pub fn open(settings: EngineSettings, clock: Arc<dyn Clock>) -> Result<Arc<Self>, EngineError> {
        let ids = Arc::new(ids::IdGen::new());
        let metrics = Arc::new(metrics::EngineMetrics::new());
        let mut inner = Inner::new(
            settings.heartbeat_timeout,
            settings.ack_timeout,
            settings.retry.clone(),
            Arc::clone(&ids),
            Arc::clone(&metrics),
        );
        inner.retention = settings.retention;
        inner.max_retained = settings.max_retained;
        let mut threads = Threads::default();
        if let Some(dir) = &settings.data_dir {
            let (db, loaded) = store::open(dir)?;
            let (tx, writer) = store::spawn_writer(db, Arc::clone(&inner.committed))?;
            inner.store = Some(tx);
            threads.writer = Some(writer);
            let restored = inner.restore(loaded, clock.now(), clock.epoch_millis());
            inner.expire(clock.epoch_millis());
            let barrier = inner.barrier(0);
            if let Some(rx) = barrier {
                rx.recv()
                    .map_err(|_| EngineError::Storage("the store stopped".into()))?
                    .map_err(EngineError::Storage)?;
            }
            log::info!(
                target: "gamelan.engine",
                "engine store {}: {} finished task(s) restored, {} unfinished requeued with their attempt, {} delivered before the restart wait for their executor",
                dir.join(store::FILE_NAME).display(),
                restored.finished,
                restored.requeued,
                restored.awaiting
            );
        }
        let interval = settings.sweep_interval.max(Duration::from_millis(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(inner),
            feed_cv: Condvar::new(),
            clock,
            settings,
            ids,
            metrics,
        });
        let sweeper = sweep::spawn(Arc::clone(&shared), interval)
            .map_err(|e| EngineError::Storage(format!("cannot start the sweeper: {e}")))?;
        threads.sweeper = Some(sweeper);
        Ok(Arc::new(Self {
            shared,
            threads: Mutex::new(threads),
        }))
    }

    /// Stops the sweeper, answers waiting long polls and feed readers, flushes the store
    /// and closes it. Later calls are refused with [`EngineError::ShuttingDown`].
    /// Idempotent.
    pub fn shutdown(&self) {
        let mut threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some((stop, handle)) = threads.sweeper.take() {
            drop(stop);
            let _ = handle.join();
        }
        let (store, wake) = {
            let mut inner = self.shared.lock();
            inner.shutting_down = true;
            let wake: Vec<_> = inner
                .executors
                .iter()
                .flatten()
                .flat_map(|e| e.waiters.iter().cloned())
                .collect();
            (inner.store.take(), wake)
        };
        for cv in wake {
            cv.notify_all();
        }
        self.shared.feed_cv.notify_all();
        drop(store);
        if let Some(writer) = threads.writer.take() {
            let _ = writer.join();
        }
    }

    /// One sweep now (liveness, ack timeouts, due retries), as the sweeper thread does
    /// every `sweep_interval`; lets tests and embedders drive time deterministically.
    pub fn sweep(&self) {
        self.shared.sweep();
    }

    /// Engine counters and gauges in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics_text()
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.shared.settings
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl EngineService for Engine {
    fn register(&self, registration: Registration) -> Result<Registered, EngineError> {
        self.shared.register(registration)
    }

    fn unregister(&self, executor_id: &str) -> Result<(), EngineError> {
        self.shared.unregister(executor_id)
    }

    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), EngineError> {
        self.shared.heartbeat(heartbeat)
    }

    fn attach(
        &self,
        executor_id: &str,
        max_in_flight: u32,
        sink: Arc<dyn TaskSink>,
    ) -> Result<StreamId, EngineError> {
        self.shared.attach(executor_id, max_in_flight, sink)
    }

    fn detach(&self, executor_id: &str, stream: StreamId) {
        self.shared.detach(executor_id, stream);
    }

    fn acknowledge(&self, task_id: &str) -> Result<(), EngineError> {
        self.shared.acknowledge(task_id)
    }

    fn poll(
        &self,
        executor_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Task>, EngineError> {
        self.shared.poll(executor_id, max, wait)
    }

    /// Without a data directory every operation only takes the engine's lock briefly.
    fn waits_on_io(&self) -> bool {
        self.shared.settings.data_dir.is_some()
    }

    fn poll_many(
        &self,
        executor_ids: &[String],
        max: usize,
        wait: Duration,
    ) -> Result<Vec<PolledTask>, EngineError> {
        let ids: Vec<&str> = executor_ids.iter().map(String::as_str).collect();
        let polled = self.shared.poll_many(&ids, max, wait)?;
        Ok(polled
            .into_iter()
            .map(|(id, task)| PolledTask::new(&*id, task))
            .collect())
    }

    fn release(&self, executor_id: &str, task_ids: &[String]) -> Result<(), EngineError> {
        self.shared.release(executor_id, task_ids)
    }

    fn report(&self, results: Vec<TaskResult>) -> Vec<Result<Acceptance, EngineError>> {
        self.shared.report(results)
    }

    fn submit(&self, request: SubmitRequest) -> Result<TaskView, EngineError> {
        self.shared
            .submit_batch(vec![request])
            .pop()
            .unwrap_or(Err(EngineError::ShuttingDown))
    }

    fn submit_batch(&self, requests: Vec<SubmitRequest>) -> Vec<Result<TaskView, EngineError>> {
        self.shared.submit_batch(requests)
    }

    fn completions(&self, after: u64, max: usize, wait: Duration) -> (Vec<TaskView>, u64) {
        self.shared.completions(after, max, wait)
    }

    fn task(&self, task_id: &str) -> Result<TaskView, EngineError> {
        self.shared.task(task_id)
    }

    fn executors(&self) -> Vec<ExecutorView> {
        self.shared.executors()
    }

    fn executor(&self, executor_id: &str) -> Result<ExecutorView, EngineError> {
        self.shared.executor(executor_id)
    }

    fn statistics(&self) -> EngineStatistics {
        self.shared.statistics()
    }
}
