//! The worker pool: a fixed set of threads fed through a crossbeam channel, with a bounded
//! admission queue, a global parallelism limit and a per-executor-type limit.
//!
//! Tasks are admitted into per-type pending queues; a task moves to the shared ready channel
//! only once both its type and the pool have a free permit, so a slow executor type can
//! never occupy every thread. Admission beyond the queue bound is refused (backpressure),
//! never dropped. Retries wait in the [`DelayQueue`], not on a worker thread.
//!
//! Every started task is a [`Flight`] until its outcome is settled. Exactly one of the
//! executor's return, its deferred completion handle, the watchdog's TIMEOUT, a cancel of a
//! deferred task and shutdown takes the job out of the flight; the others find it empty and
//! their outcome is dropped. A deferred task holds its permits without holding a thread.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use gamelan_domain::{ExecutionError, ExecutorMetadata, JsonObject, RetryPolicy, Task, TaskResult};
use gamelan_ports::sync::lock;
use gamelan_ports::{CancellationToken, Clock, ExecutionContext, Settle, WorkflowExecutor};

use super::timer::DelayQueue;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `thread-pool-size` / `task.dispatch-threads`.
    pub threads: usize,
    /// `queue-size` / `task.queue-size`: tasks admitted but not yet started.
    pub queue_size: usize,
    /// `runtime.max-parallel-tasks`.
    pub max_parallel: usize,
    pub retry: RetryPolicy,
    /// Used when a task carries no `timeout_seconds` (`engine.request-timeout`).
    pub default_timeout: Duration,
    /// `task.max-abandoned-threads`: per executor type, how many threads stuck in an
    /// executor past their task's TIMEOUT are replaced by new workers. Beyond it a stuck
    /// thread is not replaced (its task keeps its permits until the thread returns) and the
    /// type shows unhealthy in `/health`, so a hanging executor cannot grow the process
    /// without limit.
    pub max_abandoned_threads: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            threads: 10,
            queue_size: 1000,
            max_parallel: 50,
            retry: RetryPolicy::default(),
            default_timeout: Duration::from_secs(300),
            max_abandoned_threads: 10,
        }
    }
}

/// An executor as the pool runs it.
pub struct Hosted {
    pub meta: ExecutorMetadata,
    pub executor: Arc<dyn WorkflowExecutor>,
}

/// A task in the pool's hands. `route` names the transport it came from, which is where
/// its result goes back.
pub struct Job {
    pub task: Arc<Task>,
    pub exec: usize,
    pub route: usize,
    pub retries: u32,
    pub received: Instant,
    cancel: CancellationToken,
    /// Set when a worker starts it; keys its flight.
    flight: u64,
}

impl Job {
    fn flight_id(&self) -> u64 {
        self.flight
    }

    pub fn new(task: Task, exec: usize, route: usize, received: Instant) -> Self {
        Self {
            task: Arc::new(task),
            exec,
            route,
            retries: 0,
            received,
            cancel: CancellationToken::new(),
            flight: 0,
        }
    }
}

/// A task handed back unstarted (or abandoned at the drain deadline) at shutdown.
pub struct HandedBack {
    pub route: usize,
    pub task: Arc<Task>,
}

/// A final result leaving the pool.
pub struct Finished {
    pub route: usize,
    pub exec: usize,
    pub result: TaskResult,
    /// From admission to result, retries included.
    pub duration: Duration,
}

pub type FinishHook = Box<dyn Fn(Finished) + Send + Sync>;

enum Msg {
    Run(Job),
    Stop,
}

struct Sched {
    pending: Vec<VecDeque<Job>>,
    running: Vec<usize>,
    running_total: usize,
    /// Cancellation tokens of tasks holding permits, by task id. A dispatched task sits in
    /// the ready channel before a worker's slot shows it; without this map a cancel in
    /// that window would find the task nowhere and be lost.
    dispatched: HashMap<String, CancellationToken>,
    rr: usize,
    closed: bool,
}

/// A started task until its outcome is settled.
struct Flight {
    task: Arc<Task>,
    exec: usize,
    deadline: Instant,
    cancel: CancellationToken,
    /// `Some` until settled; whoever takes it reports the outcome.
    job: Mutex<Option<Job>>,
    /// `execute` returned after deferring: the completion handle settles the task.
    deferred: AtomicBool,
}

enum SlotState {
    Idle,
    Running(Arc<Flight>),
    /// Shutdown took the task away; the worker drops its result and retires.
    Taken,
    /// TIMEOUT fired while the executor still held this thread and a replacement worker
    /// was started: the thread retires when the executor returns.
    Replaced {
        exec: usize,
    },
    /// TIMEOUT fired but the type's abandoned-thread cap was reached: no replacement, the
    /// task keeps its permits, and the thread rejoins the pool when the executor returns.
    Held {
        exec: usize,
    },
}

struct Slot(Mutex<SlotState>);

struct Shared {
    settings: PoolSettings,
    hosted: Arc<[Hosted]>,
    limits: Vec<usize>,
    sched: Mutex<Sched>,
    idle: Condvar,
    ready_tx: Sender<Msg>,
    ready_rx: Receiver<Msg>,
    /// Admitted, not yet started (pending queues + ready channel).
    waiting: AtomicUsize,
    retries: DelayQueue<Job>,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Every started, unsettled task (on a worker or deferred), by flight id.
    flights: Mutex<HashMap<u64, Arc<Flight>>>,
    next_flight: AtomicU64,
    /// Per executor type: threads abandoned to a timed-out execution, still running.
    abandoned: Vec<AtomicUsize>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    on_finish: FinishHook,
    clock: Arc<dyn Clock>,
    random: RandomState,
}

/// Why a task was not admitted; the task comes back so nothing is lost.
pub enum Refused {
    Full(Job),
    Closed(Job),
}

impl Refused {
    pub fn into_job(self) -> Job {
        match self {
            Self::Full(j) | Self::Closed(j) => j,
        }
    }
}

pub struct WorkerPool {
    shared: Arc<Shared>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

impl WorkerPool {
    pub fn start(
        settings: PoolSettings,
        hosted: Arc<[Hosted]>,
        clock: Arc<dyn Clock>,
        on_finish: FinishHook,
    ) -> Self {
        let settings = PoolSettings {
            threads: settings.threads.max(1),
            queue_size: settings.queue_size.max(1),
            max_parallel: settings.max_parallel.max(1),
            ..settings
        };
        let (ready_tx, ready_rx) = unbounded();
        let n = hosted.len();
        let limits = hosted
            .iter()
            .map(|h| usize::try_from(h.meta.max_concurrent_tasks.max(1)).unwrap_or(usize::MAX))
            .collect();
        let shared = Arc::new(Shared {
            sched: Mutex::new(Sched {
                pending: (0..n).map(|_| VecDeque::new()).collect(),
                running: vec![0; n],
                running_total: 0,
                dispatched: HashMap::new(),
                rr: 0,
                closed: false,
            }),
            limits,
            idle: Condvar::new(),
            ready_tx,
            ready_rx,
            waiting: AtomicUsize::new(0),
            retries: DelayQueue::new(),
            slots: Mutex::new(Vec::new()),
            flights: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(0),
            abandoned: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            workers: Mutex::new(Vec::new()),
            on_finish,
            clock,
            random: RandomState::new(),
            hosted,
            settings,
        });
        for _ in 0..shared.settings.threads {
            spawn_worker(&shared);
        }
        let timer_shared = Arc::clone(&shared);
        let timer = thread::Builder::new()
            .name("gamelan-watchdog".into())
            .spawn(move || watchdog(&timer_shared))
            .ok();
        Self {
            shared,
            timer: Mutex::new(timer),
        }
    }

    /// How many more tasks may be admitted right now: the transport asks the engine for no
    /// more than this (0 = backpressure).
    pub fn credit(&self) -> usize {
        let held = self.shared.waiting.load(Ordering::Acquire) + self.shared.retries.len();
        self.shared.settings.queue_size.saturating_sub(held)
    }

    /// Admits a task or hands it back. Never blocks beyond a short lock.
    pub fn submit(&self, job: Job) -> Result<(), Refused> {
        let s = &self.shared;
        let mut sched = lock(&s.sched);
        if sched.closed {
            return Err(Refused::Closed(job));
        }
        if s.waiting.load(Ordering::Acquire) + s.retries.len() >= s.settings.queue_size {
            return Err(Refused::Full(job));
        }
        s.waiting.fetch_add(1, Ordering::AcqRel);
        s.enqueue(&mut sched, job);
        Ok(())
    }

    /// Cancels a task wherever it is: a waiting task finishes at once as CANCELLED, a
    /// running one sees its token cancelled (the executor decides how fast it stops).
    pub fn cancel(&self, task_id: &str, reason: &str) -> bool {
        let s = &self.shared;
        let found = {
            let mut sched = lock(&s.sched);
            let mut found = None;
            for q in &mut sched.pending {
                if let Some(pos) = q.iter().position(|j| j.task.task_id == task_id) {
                    found = q.remove(pos);
                    break;
                }
            }
            if found.is_some() {
                sched.dispatched.remove(task_id);
            }
            found
        };
        if let Some(job) = found {
            s.waiting.fetch_sub(1, Ordering::AcqRel);
            let err = ExecutionError::Cancelled(reason.to_owned());
            s.deliver(&job, Err(err));
            return true;
        }
        if let Some(job) = s.retries.remove_where(|j| j.task.task_id == task_id) {
            lock(&s.sched).dispatched.remove(task_id);
            s.deliver(&job, Err(ExecutionError::Cancelled(reason.to_owned())));
            return true;
        }
        let token = lock(&s.sched).dispatched.get(task_id).cloned();
        let Some(token) = token else { return false };
        token.cancel();
        std::sync::atomic::fence(Ordering::SeqCst);
        // A deferred task has no thread to notice the token: settle it here. A task still
        // inside `execute` is settled by its worker if it defers (it re-checks the token).
        let deferred: Vec<Arc<Flight>> = lock(&s.flights)
            .values()
            .filter(|f| f.task.task_id == task_id && f.deferred.load(Ordering::SeqCst))
            .cloned()
            .collect();
        for f in deferred {
            s.settle(&f, Err(ExecutionError::Cancelled(reason.to_owned())));
        }
        true
    }

    /// Tasks admitted and not yet started, per hosted executor (index order).
    pub fn queued_by_executor(&self) -> Vec<usize> {
        lock(&self.shared.sched)
            .pending
            .iter()
            .map(VecDeque::len)
            .collect()
    }

    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::Acquire)
    }

    pub fn running(&self) -> usize {
        lock(&self.shared.sched).running_total
    }

    /// Tasks dispatched or executing, per hosted executor (index order).
    pub fn running_by_executor(&self) -> Vec<usize> {
        lock(&self.shared.sched).running.clone()
    }

    pub fn retrying(&self) -> usize {
        self.shared.retries.len()
    }

    /// Threads stuck in a timed-out execution and still running, per hosted executor.
    pub fn abandoned_by_executor(&self) -> Vec<usize> {
        self.shared
            .abandoned
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .collect()
    }

    /// Live worker threads, stuck ones included.
    pub fn worker_threads(&self) -> usize {
        lock(&self.shared.slots).len()
    }

    /// The configured cap on replaced stuck threads per executor type.
    pub fn max_abandoned_threads(&self) -> usize {
        self.shared.settings.max_abandoned_threads
    }

    /// Tasks whose executor deferred the result and whose handle has not settled yet, per
    /// hosted executor.
    pub fn deferred_by_executor(&self) -> Vec<usize> {
        let mut out = vec![0; self.shared.hosted.len()];
        for f in lock(&self.shared.flights).values() {
            if f.deferred.load(Ordering::Acquire) {
                out[f.exec] += 1;
            }
        }
        out
    }

    /// First half of a graceful stop: refuse new tasks and take back every task not
    /// started, including those waiting for a retry, so the engine can redispatch them at
    /// once.
    pub fn close(&self) -> Vec<HandedBack> {
        let s = &self.shared;
        let back = |j: Job| HandedBack {
            route: j.route,
            task: j.task,
        };
        let mut handback = Vec::new();
        {
            let mut sched = lock(&s.sched);
            sched.closed = true;
            let pending: Vec<Job> = sched.pending.iter_mut().flat_map(|q| q.drain(..)).collect();
            for job in pending {
                // A retried task waiting for room still has its token registered.
                sched.dispatched.remove(&job.task.task_id);
                handback.push(back(job));
            }
            while let Ok(msg) = s.ready_rx.try_recv() {
                if let Msg::Run(job) = msg {
                    sched.take_permit(job.exec, Some(&job.task.task_id));
                    handback.push(back(job));
                }
            }
            s.waiting.store(0, Ordering::Release);
            if sched.running_total == 0 {
                s.idle.notify_all();
            }
        }
        let parked = s.retries.drain();
        {
            let mut sched = lock(&s.sched);
            for job in &parked {
                sched.dispatched.remove(&job.task.task_id);
            }
        }
        handback.extend(parked.into_iter().map(back));
        handback
    }

    /// Second half: let running tasks finish until `drain` passes, then take back those
    /// still running (their late results are dropped) and stop the threads.
    pub fn drain(&self, drain: Duration) -> Vec<HandedBack> {
        let s = Arc::clone(&self.shared);
        let mut handback = self.close();
        let deadline = Instant::now() + drain;
        {
            let mut sched = lock(&s.sched);
            while sched.running_total > 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                sched = s
                    .idle
                    .wait_timeout(sched, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        // Whatever is still unsettled (running or deferred) goes back to the engine.
        let flights: Vec<Arc<Flight>> = lock(&s.flights).values().cloned().collect();
        for f in flights {
            if let Some(job) = s.take(&f) {
                job.cancel.cancel();
                s.release(job.exec, Some(&job.task.task_id));
                handback.push(HandedBack {
                    route: job.route,
                    task: job.task,
                });
            }
        }
        for slot in lock(&s.slots).iter() {
            let mut st = lock(&slot.0);
            if matches!(*st, SlotState::Running(_)) {
                *st = SlotState::Taken;
            }
        }
        let workers = std::mem::take(&mut *lock(&s.workers));
        for _ in 0..workers.len() {
            let _ = s.ready_tx.send(Msg::Stop);
        }
        s.retries.stop();
        if let Some(t) = lock(&self.timer).take() {
            let _ = t.join();
        }
        for w in workers {
            // Workers stuck in an executor past the drain deadline are left to finish alone:
            // their results are dropped and the process can still exit.
            if w.is_finished() {
                let _ = w.join();
            }
        }
        handback
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if lock(&self.timer).is_some() {
            let s = &self.shared;
            lock(&s.sched).closed = true;
            for _ in 0..lock(&s.workers).len() {
                let _ = s.ready_tx.send(Msg::Stop);
            }
            s.retries.stop();
        }
    }
}

impl Sched {
    /// Frees a task's permits; `forget` also drops its cancellation token, which a task
    /// going to the retry queue keeps so a cancel still reaches it when re-dispatched.
    fn take_permit(&mut self, exec: usize, forget: Option<&str>) {
        self.running[exec] -= 1;
        self.running_total -= 1;
        if let Some(task_id) = forget {
            self.dispatched.remove(task_id);
        }
    }
}

impl Shared {
    /// Puts an admitted job on the ready channel if permits allow, else in its queue.
    fn enqueue(&self, sched: &mut Sched, job: Job) {
        let e = job.exec;
        if sched.pending[e].is_empty()
            && sched.running[e] < self.limits[e]
            && sched.running_total < self.settings.max_parallel
        {
            self.dispatch(sched, job);
        } else {
            sched.pending[e].push_back(job);
        }
    }

    /// Frees the permits of a finished task and moves waiting tasks into the freed room,
    /// round-robin across executor types.
    fn release(&self, exec: usize, forget: Option<&str>) {
        let mut sched = lock(&self.sched);
        sched.take_permit(exec, forget);
        let n = sched.pending.len();
        let mut misses = 0;
        while sched.running_total < self.settings.max_parallel && misses < n && !sched.closed {
            let e = sched.rr % n;
            sched.rr = sched.rr.wrapping_add(1);
            if sched.running[e] < self.limits[e]
                && let Some(job) = sched.pending[e].pop_front()
            {
                self.dispatch(&mut sched, job);
                misses = 0;
            } else {
                misses += 1;
            }
        }
        if sched.running_total == 0 {
            self.idle.notify_all();
        }
    }

    /// Gives a job its permits and hands it to the workers.
    fn dispatch(&self, sched: &mut Sched, job: Job) {
        sched.running[job.exec] += 1;
        sched.running_total += 1;
        sched
            .dispatched
            .insert(job.task.task_id.clone(), job.cancel.clone());
        let _ = self.ready_tx.send(Msg::Run(job));
    }

    fn deliver(&self, job: &Job, outcome: Result<gamelan_domain::JsonObject, ExecutionError>) {
        let now_ms = self.clock.epoch_millis();
        let result = match outcome {
            Ok(output) => TaskResult::completed(&job.task, output, now_ms),
            Err(err) => {
                let target = "gamelan.executor.error";
                log::warn!(target: target, "task {} failed: {err}", job.task.task_id);
                TaskResult::failed(&job.task, err.to_error_info(), now_ms)
            }
        };
        (self.on_finish)(Finished {
            route: job.route,
            exec: job.exec,
            result,
            duration: job.received.elapsed(),
        });
    }

    /// Takes the job out of its flight: `Some` for exactly one caller.
    fn take(&self, flight: &Flight) -> Option<Job> {
        let job = lock(&flight.job).take()?;
        lock(&self.flights).remove(&job.flight_id());
        Some(job)
    }

    /// Settles a flight with an outcome through the normal finish path; `false` when it
    /// was already settled and the outcome is dropped.
    fn settle(&self, flight: &Flight, outcome: Result<JsonObject, ExecutionError>) -> bool {
        if let Some(job) = self.take(flight) {
            self.finish(job, outcome);
            true
        } else {
            log::debug!(
                target: "gamelan.executor.task",
                "task {} already settled; late outcome dropped",
                flight.task.task_id
            );
            false
        }
    }

    /// The end of an execution, whoever produced its outcome: retry policy, report,
    /// permits.
    fn finish(&self, mut job: Job, outcome: Result<JsonObject, ExecutionError>) {
        match outcome {
            Err(err) if err.is_retryable() => {
                if let Some(delay) = self
                    .settings
                    .retry
                    .next_delay(job.retries, self.unit_random())
                {
                    log::info!(
                        target: "gamelan.executor.task",
                        "task {} failed ({err}); retry {} in {delay:?}",
                        job.task.task_id,
                        job.retries + 1
                    );
                    job.retries += 1;
                    let exec = job.exec;
                    self.retries.schedule(Instant::now() + delay, job);
                    self.release(exec, None);
                } else {
                    let err = match err {
                        ExecutionError::Technical { code, message } => ExecutionError::Technical {
                            code,
                            message: format!("{message} (after {} retries)", job.retries),
                        },
                        other => other,
                    };
                    self.deliver(&job, Err(err));
                    self.release(job.exec, Some(&job.task.task_id));
                }
            }
            other => {
                self.deliver(&job, other);
                self.release(job.exec, Some(&job.task.task_id));
            }
        }
    }

    fn unit_random(&self) -> f64 {
        let bits = self.random.hash_one(Instant::now()) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}

fn spawn_worker(shared: &Arc<Shared>) {
    let slot = Arc::new(Slot(Mutex::new(SlotState::Idle)));
    lock(&shared.slots).push(Arc::clone(&slot));
    let s = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("gamelan-worker".into())
        .spawn(move || worker(&s, &slot));
    match spawned {
        Ok(handle) => lock(&shared.workers).push(handle),
        Err(e) => log::error!(target: "gamelan.executor.runtime", "cannot spawn worker: {e}"),
    }
}

fn worker(s: &Arc<Shared>, slot: &Arc<Slot>) {
    while let Ok(Msg::Run(job)) = s.ready_rx.recv() {
        s.waiting.fetch_sub(1, Ordering::AcqRel);
        if !run(s, slot, job) {
            // A replacement took this thread's place (timeout) or the pool stopped: retire.
            lock(&s.slots).retain(|x| !Arc::ptr_eq(x, slot));
            return;
        }
    }
}

/// The completion side of a flight, handed to the executor through its context.
struct FlightSettle {
    pool: Weak<Shared>,
    flight: Arc<Flight>,
}

impl Settle for FlightSettle {
    fn settle(&self, outcome: Result<JsonObject, ExecutionError>) -> bool {
        self.pool
            .upgrade()
            .is_some_and(|s| s.settle(&self.flight, outcome))
    }
}

/// Runs one job; returns false when this thread must retire (replaced after a timeout, or
/// taken away at shutdown).
fn run(s: &Arc<Shared>, slot: &Slot, mut job: Job) -> bool {
    if job.cancel.is_cancelled() {
        // Cancelled between dispatch and pickup: the executor never sees it.
        let err = ExecutionError::Cancelled("cancelled before it started".to_owned());
        s.deliver(&job, Err(err));
        s.release(job.exec, Some(&job.task.task_id));
        return true;
    }
    let hosted = &s.hosted[job.exec];
    let timeout = job
        .task
        .timeout_seconds
        .map_or(s.settings.default_timeout, Duration::from_secs);
    let deadline = deadline_after(Instant::now(), timeout);
    job.flight = s.next_flight.fetch_add(1, Ordering::Relaxed);
    let id = job.flight;
    let retries = job.retries;
    let task = Arc::clone(&job.task);
    let cancel = job.cancel.clone();
    let flight = Arc::new(Flight {
        task: Arc::clone(&task),
        exec: job.exec,
        deadline,
        cancel: cancel.clone(),
        job: Mutex::new(Some(job)),
        deferred: AtomicBool::new(false),
    });
    lock(&s.flights).insert(id, Arc::clone(&flight));
    *lock(&slot.0) = SlotState::Running(Arc::clone(&flight));
    s.retries.hint(deadline);
    let ctx = ExecutionContext::new(cancel.clone(), deadline, retries).with_settle(Arc::new(
        FlightSettle {
            pool: Arc::downgrade(s),
            flight: Arc::clone(&flight),
        },
    ));
    // One line per execution (retries included), so how often a task ran can be counted
    // from the log (`RUST_LOG=gamelan.executor.task=debug`).
    log::debug!(
        target: "gamelan.executor.task",
        "task {} executing (try {})",
        task.task_id,
        retries + 1
    );
    let outcome = catch_unwind(AssertUnwindSafe(|| hosted.executor.execute(&task, &ctx)));
    let deferred = ctx.is_deferred();
    drop(ctx);
    {
        let mut st = lock(&slot.0);
        match std::mem::replace(&mut *st, SlotState::Idle) {
            SlotState::Taken => return false,
            SlotState::Replaced { exec } => {
                s.abandoned[exec].fetch_sub(1, Ordering::AcqRel);
                return false;
            }
            SlotState::Held { exec } => {
                // Back from a timed-out execution with no replacement started: free the
                // permits its task kept and serve again.
                drop(st);
                s.abandoned[exec].fetch_sub(1, Ordering::AcqRel);
                s.release(exec, None);
                return true;
            }
            SlotState::Idle | SlotState::Running(_) => {}
        }
    }
    let outcome = match outcome {
        Ok(r) => r,
        Err(payload) => Err(ExecutionError::Panic(panic_message(payload.as_ref()))),
    };
    match outcome {
        Ok(_) if deferred => {
            // The handle settles it. A cancel that came while `execute` still ran saw no
            // deferred flight; settle it here (whichever of the two is second finds the
            // flight empty).
            flight.deferred.store(true, Ordering::SeqCst);
            // Pairs with the fence in `cancel`: at least one side sees the other's store.
            std::sync::atomic::fence(Ordering::SeqCst);
            if cancel.is_cancelled() {
                let err = ExecutionError::Cancelled("cancelled while deferred".to_owned());
                s.settle(&flight, Err(err));
            }
        }
        other => {
            s.settle(&flight, other);
        }
    }
    true
}

/// `now + timeout`, or a century from now when that overflows the clock: a task may ask for
/// any `timeoutSeconds` up to `u64::MAX`, which means "no practical limit", never a panic.
fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(timeout.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Fires timeouts and re-admits due retries.
fn watchdog(s: &Arc<Shared>) {
    loop {
        let next = lock(&s.flights).values().map(|f| f.deadline).min();
        let Some(due) = s.retries.wait_due(next) else {
            return;
        };
        for job in due {
            let mut sched = lock(&s.sched);
            if sched.closed {
                drop(sched);
                // Shutdown raced with the retry: hand it to the drain via the queue.
                s.retries.schedule(Instant::now(), job);
                break;
            }
            s.waiting.fetch_add(1, Ordering::AcqRel);
            s.enqueue(&mut sched, job);
        }
        fire_timeouts(s);
    }
}

fn fire_timeouts(s: &Arc<Shared>) {
    let now = Instant::now();
    let expired: Vec<Arc<Flight>> = lock(&s.flights)
        .values()
        .filter(|f| f.deadline <= now)
        .cloned()
        .collect();
    for flight in expired {
        let Some(job) = s.take(&flight) else { continue };
        flight.cancel.cancel();
        let exec = flight.exec;
        // Is a worker thread still inside the executor for this task?
        let mut holds_permits = false;
        let mut replace = false;
        for slot in lock(&s.slots).iter() {
            let mut st = lock(&slot.0);
            if matches!(&*st, SlotState::Running(f) if Arc::ptr_eq(f, &flight)) {
                let before = s.abandoned[exec].fetch_add(1, Ordering::AcqRel);
                if before < s.settings.max_abandoned_threads {
                    *st = SlotState::Replaced { exec };
                    replace = true;
                } else {
                    *st = SlotState::Held { exec };
                    holds_permits = true;
                }
                break;
            }
        }
        let timeout = flight.deadline.saturating_duration_since(job.received);
        log::warn!(target: "gamelan.executor.error", "task {} timed out", job.task.task_id);
        s.deliver(&job, Err(ExecutionError::Timeout(timeout)));
        if holds_permits {
            log::error!(
                target: "gamelan.executor.runtime",
                "executor '{}' has {} threads stuck past their timeout (cap {}): not replacing \
                 this one; the type is unhealthy",
                s.hosted[exec].meta.executor_type,
                s.abandoned[exec].load(Ordering::Acquire),
                s.settings.max_abandoned_threads
            );
            lock(&s.sched).dispatched.remove(&job.task.task_id);
        } else {
            s.release(exec, Some(&job.task.task_id));
        }
        if replace {
            // The stuck thread retires when its executor returns; keep the pool full size.
            spawn_worker(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_task_timeout_is_a_far_deadline_not_an_overflow() {
        let now = Instant::now();
        let far = deadline_after(now, Duration::from_secs(u64::MAX));
        assert!(far >= now + Duration::from_secs(24 * 3600));
        let near = deadline_after(now, Duration::from_secs(30));
        assert_eq!(near, now + Duration::from_secs(30));
    }
}
