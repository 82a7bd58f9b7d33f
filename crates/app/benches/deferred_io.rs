//! Tasks that wait on I/O, deferred vs blocking: 1,000 concurrent tasks each waiting 200 ms
//! on a pool of 2 worker threads, through a runtime over the in-memory transport.
//!
//! Deferred: `execute` hands its completion handle to a timer thread standing in for the
//! I/O (an HTTP client callback, another runtime) and returns at once. Blocking: `execute`
//! sleeps the 200 ms on the worker thread, as a blocking I/O call would; with 2 threads
//! 1,000 of those take 100 s of wall time, so a smaller batch is run and extrapolated.
//!
//! Run: `cargo bench -p gamelan --bench deferred_io` (prints the figures; the wait dominates,
//! so `--profile dev` gives the same picture without a release build).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};
use gamelan::runtime::local::LocalEngine;
use gamelan::runtime::{PoolSettings, Runtime, RuntimeSettings};
use gamelan::sdk::{
    Declared, Deferred, ExecutionContext, ExecutionError, JsonObject, Task, WorkflowExecutor,
};
use gamelan_domain::{BatchPolicy, CommunicationType, ExecutorMetadata};

const TASKS: usize = 1000;
const BLOCKING_TASKS: usize = 20;
const RUNS: usize = 5;
const THREADS: usize = 2;
const WAIT: Duration = Duration::from_millis(200);

/// Completes each handle `WAIT` after it arrived: every wait is the same length, so the
/// arrival order is the due order and a FIFO is the whole timer.
fn timer() -> Sender<(Instant, Deferred)> {
    let (tx, rx) = unbounded::<(Instant, Deferred)>();
    thread::spawn(move || {
        for (due, handle) in rx {
            let left = due.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                thread::sleep(left);
            }
            let _ = handle.complete(Ok(JsonObject::new()));
        }
    });
    tx
}

struct DeferredWait(Sender<(Instant, Deferred)>);

impl WorkflowExecutor for DeferredWait {
    fn execute(&self, _: &Task, ctx: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        let handle = ctx.defer();
        self.0
            .send((Instant::now() + WAIT, handle))
            .map_err(|_| ExecutionError::technical("TIMER_DOWN", "timer thread stopped"))?;
        Ok(JsonObject::new())
    }
}

struct BlockingWait;

impl WorkflowExecutor for BlockingWait {
    fn execute(&self, _: &Task, _: &ExecutionContext) -> Result<JsonObject, ExecutionError> {
        thread::sleep(WAIT);
        Ok(JsonObject::new())
    }
}

/// Wall time for `n` tasks through a fresh runtime with `THREADS` workers.
fn run(executor: impl WorkflowExecutor, n: usize) -> Duration {
    let engine = LocalEngine::new();
    let meta = ExecutorMetadata::new("wait")
        .communication(CommunicationType::Local)
        .max_concurrent_tasks(u32::try_from(n).unwrap_or(u32::MAX));
    let runtime = Runtime::builder()
        .discover(false)
        .settings(RuntimeSettings {
            pool: PoolSettings {
                threads: THREADS,
                queue_size: 2 * n,
                max_parallel: 2 * n,
                ..PoolSettings::default()
            },
            batch: BatchPolicy {
                max_size: 100,
                max_age: Duration::ZERO,
            },
            heartbeat_enabled: false,
            ..RuntimeSettings::default()
        })
        .transport(CommunicationType::Local, engine.transport())
        .executor_arc(Arc::new(Declared::new(executor, meta)))
        .start()
        .expect("runtime starts");
    assert!(runtime.wait_ready(Duration::from_secs(30)));
    let t0 = Instant::now();
    for i in 0..n {
        let mut t = Task::new(format!("run-{i}"), "n", "wait", 1);
        t.execution_token = format!("tok-{i}");
        engine.push_task(t);
    }
    assert!(
        engine.wait_until(Duration::from_secs(600), |v| v.results().len() >= n),
        "not every task finished"
    );
    let took = t0.elapsed();
    assert!(
        engine
            .results()
            .iter()
            .all(gamelan_domain::TaskResult::is_completed)
    );
    runtime.shutdown();
    took
}

fn main() {
    // `cargo bench` passes `--bench`; this harness has no options.
    let timer = timer();
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| run(DeferredWait(timer.clone()), TASKS))
        .collect();
    runs.sort();
    let deferred = runs[RUNS / 2];
    let blocking = run(BlockingWait, BLOCKING_TASKS);
    let per_task = blocking.as_secs_f64() / BLOCKING_TASKS as f64;
    println!(
        "deferred: {TASKS} tasks x {WAIT:?} wait on {THREADS} workers: {:.3} s wall \
         (median of {RUNS}; min {:.3}, max {:.3})",
        deferred.as_secs_f64(),
        runs[0].as_secs_f64(),
        runs[RUNS - 1].as_secs_f64()
    );
    println!(
        "blocking: {BLOCKING_TASKS} tasks x {WAIT:?} wait on {THREADS} workers: {:.3} s wall \
         ({:.1} ms per task); {TASKS} tasks extrapolated: {:.1} s wall, {:.1} s of worker-thread time",
        blocking.as_secs_f64(),
        per_task * 1000.0,
        per_task * TASKS as f64,
        per_task * TASKS as f64 * THREADS as f64
    );
}
